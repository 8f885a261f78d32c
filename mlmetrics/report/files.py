"""Writing a report: JSON (everything) and a one-row-per-run CSV."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from ..stats.report import interval_columns
from .jsonable import jsonable


def write_json(rep: dict, path: str | os.PathLike) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(jsonable(rep), f, indent=1, allow_nan=False)
    return str(path)


def write_csv(rep: dict, path: str | os.PathLike) -> str:
    """One row per run (model, data, counts, images/s and every scalar metric), appended
    when the file exists with the same columns (like timm's validate.py results file)."""
    path = Path(path)
    row = {"model": rep.get("model", {}).get("model"), "weights": rep.get("model", {}).get("weights"),
           "data": rep.get("dataset", {}).get("root"), "labels": rep.get("dataset", {}).get("labels"),
           "num_images": rep["num_images"], "num_scored": rep["num_scored"], "num_skipped": rep["num_skipped"],
           "images_per_s": rep.get("timings", {}).get("images_per_s")}
    for k, v in rep["metrics"].items():
        if not isinstance(v, (list, dict)):
            row[k] = v
    row.update(interval_columns(rep["metrics"]))  # <metric>_low / _high with eval --intervals
    append = False
    if path.is_file():
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        append = header == list(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if not append:
            w.writeheader()
        w.writerow(row)
    return str(path)
