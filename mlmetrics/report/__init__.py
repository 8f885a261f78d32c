"""Reports: one JSON-able dict per (model, dataset) whose numbers come from the metrics, its
text rendering, files (JSON, CSV, leaderboards) and PNG plots."""
from .build import build_report, per_image_rows
from .files import write_csv, write_json
from .jsonable import jsonable
from .leaderboard import leaderboard_rows, to_markdown, write_leaderboard
from .names import class_namer
from .text import format_text

__all__ = ["build_report", "class_namer", "format_text", "jsonable", "leaderboard_rows", "per_image_rows",
           "to_markdown", "write_csv", "write_json", "write_leaderboard", "write_plots"]


def write_plots(records, rep: dict, out_dir, *, targets=None, bins: int = 15) -> list[str]:
    """PNG plots of one run (see :mod:`mlmetrics.report.plots`)."""
    from .plots import write_plots as _write

    return _write(records, rep, out_dir, targets=targets, bins=bins)
