"""A leaderboard: one row per (model, label source) from reports' metrics, as markdown,
CSV or JSON."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Sequence

from .jsonable import jsonable

#: leaderboard columns taken from a report's metrics, in order, when present
COLUMNS = ("top1", "top5", "real_top1", "real_top5", "variable_topk_strict", "asma", "nll", "ece", "macro_accuracy")
#: columns printed in percent in the markdown table (the others as they are)
PERCENT = ("top1", "top5", "real_top1", "real_top5", "variable_topk_strict", "asma", "ece", "macro_accuracy")
FORMATS = {".md": "markdown", ".csv": "csv", ".json": "json"}


def short_source(labels) -> str:
    """``annotations:/data/x/ann.json`` -> ``annotations:ann.json`` (``real:PATH`` -> ``real:NAME``)."""
    kind, sep, path = str(labels).partition(":")
    return f"{kind}:{Path(path).name}" if sep else kind


def leaderboard_rows(reports: Sequence[dict]) -> list[dict]:
    """One row per report (model, labels, images scored and the :data:`COLUMNS` metrics it has),
    best first by the first column every row has."""
    rows = []
    for rep in reports:
        m = rep.get("metrics", {})
        row = {"model": rep.get("model", {}).get("model"),
               "labels": short_source(rep.get("dataset", {}).get("labels")), "n": rep.get("num_scored")}
        row.update({k: m[k] for k in COLUMNS if k in m})
        rows.append(row)
    key = next((k for k in COLUMNS[:6] if rows and all(r.get(k) is not None for r in rows)), None)
    if key is not None:  # an accuracy: higher is better
        rows.sort(key=lambda r: (str(r["labels"]), -r[key]))
    return rows


def _columns(rows: Sequence[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return cols


def _cell(v, column: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{100 * v:.2f}" if column in PERCENT else f"{v:.4f}"
    return str(v)


def to_markdown(rows: Sequence[dict]) -> str:
    """A markdown table (accuracies and ECE in %)."""
    if not rows:
        return "(no models)"
    cols = _columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(c), c) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_leaderboard(rows: Sequence[dict], path: str | os.PathLike) -> str:
    """Write ``rows`` as markdown (``.md``), CSV (``.csv``) or JSON (``.json``), by the suffix."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"--leaderboard {path}: use a .md, .csv or .json file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "markdown":
        path.write_text(to_markdown(rows) + "\n")
    elif fmt == "json":
        path.write_text(json.dumps(jsonable(list(rows)), indent=1, allow_nan=False) + "\n")
    else:
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=_columns(rows))
            w.writeheader()
            w.writerows(rows)
    return str(path)
