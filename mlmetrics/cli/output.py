"""Writing and printing the reports of a run (one model: its report; several: a leaderboard)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

from ..report import (format_text, leaderboard_rows, to_markdown, write_csv, write_json, write_leaderboard,
                      write_plots)


def _plot_dir(root: str, name: str) -> str:
    return str(Path(root) / re.sub(r"[^A-Za-z0-9._-]+", "_", name))


def emit(reports: Sequence[dict], args, records: Sequence, namers: Sequence[Callable], targets: Sequence) -> None:
    """Write ``--out`` / ``--csv`` / ``--leaderboard`` / ``--plots`` and print the result."""
    single = len(reports) == 1
    board = leaderboard_rows(reports)
    several_sources = len({rep["dataset"].get("labels") for rep in reports}) > 1
    written: dict[str, str] = {}
    if args.plots:
        for rep, rec, tg in zip(reports, records, targets):
            name = str(rep["model"].get("model"))
            if several_sources:
                name += "-" + Path(str(rep["dataset"].get("labels")).split(":", 1)[-1]).stem
            files = write_plots(rec, rep, args.plots if single else _plot_dir(args.plots, name),
                                targets=tg, bins=args.ece_bins)
            rep.setdefault("outputs", {})["plots"] = files
        if not single:
            from ..report.study import write_study_plots

            written["study plots"] = ", ".join(write_study_plots(reports, args.plots))
    if args.csv:
        for rep in reports:
            write_csv(rep, args.csv)
        written["csv"] = args.csv
    for path in args.leaderboard:
        written[f"leaderboard {Path(path).suffix[1:]}"] = write_leaderboard(board, path)
    if args.out:
        written["report"] = args.out
        if single:
            reports[0].setdefault("outputs", {}).update(written)
        write_json(reports[0] if single else {"leaderboard": board, "reports": list(reports)}, args.out)
    if args.quiet:
        return
    if single:
        rep = reports[0]
        rep.setdefault("outputs", {}).update(written)
        if not rep["outputs"]:
            rep.pop("outputs")
        print(format_text(rep, namer=namers[0], max_images=args.max_print))
    else:
        print(to_markdown(board))
        for k, v in written.items():
            print(f"wrote {k}: {v}")
