"""Argument types and the output options ``eval`` and ``rescore`` share."""
from __future__ import annotations

import argparse


def int_at_least(flag: str, low: int):
    """An argparse type: an integer >= ``low``; the error names ``flag``."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            v = None
        if v is None or v < low:
            what = "a positive integer" if low == 1 else f"an integer >= {low}"
            raise argparse.ArgumentTypeError(f"{flag}: expected {what}, got {s!r}")
        return v
    return parse


def positive_int(flag: str):
    return int_at_least(flag, 1)


def non_negative_int(flag: str):
    return int_at_least(flag, 0)


def fraction(flag: str):
    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            v = float("nan")
        if not 0.0 < v <= 1.0:
            raise argparse.ArgumentTypeError(f"{flag}: expected a number in (0, 1], got {s!r}")
        return v
    return parse


def topk(s: str) -> tuple[int, ...]:
    """``--topk 1,5``: distinct positive ints."""
    try:
        ks = tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--topk: comma-separated positive integers, got {s!r}") from None
    if not ks or min(ks) < 1 or len(set(ks)) != len(ks):
        raise argparse.ArgumentTypeError(f"--topk: distinct positive integers, got {s!r}")
    return ks


def intervals_kwargs(args) -> dict | None:
    """``metrics_kwargs`` asking the scorer for bootstrap intervals (``--intervals``; 1000 with --demo)."""
    n = getattr(args, "intervals", None)
    if n is None and getattr(args, "demo", False):
        n = 1000
    return {"bootstrap": n} if n else None


def add_output_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="JSON", help="write the JSON report (every metric, subgroups, config, timings)")
    g.add_argument("--csv", metavar="CSV", help="append one summary row per model (scalar metrics) to CSV")
    g.add_argument("--intervals", type=non_negative_int("--intervals"), default=None, metavar="REPLICATES",
                   help="95%% bootstrap intervals for every metric from REPLICATES Poisson bootstrap replicates "
                        "(default: 1000 with --demo, else none; 0 = none)")
    g.add_argument("--leaderboard", metavar="FILE", action="append", default=[],
                   help="write the leaderboard (one row per model and label source): .md, .csv or .json "
                        "(repeatable)")
    g.add_argument("--per-image", action="store_true",
                   help="add per-image top-5 (index, name, prob) and label sets to the report")
    g.add_argument("--plots", metavar="DIR", help="write PNG plots (per model; with several models also the "
                   "study plots: top-1 vs ReaL, top-1 vs ASMA, accuracy by label count)")
    g.add_argument("--topk", type=topk, default=None,
                   help="comma-separated k values (default 1,5, capped at the number of classes)")
    g.add_argument("--ece-bins", type=positive_int("--ece-bins"), default=15)
    g.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors (still writes files)")
    g.add_argument("--max-print", type=non_negative_int("--max-print"), default=50,
                   help="per-image rows printed (default 50)")
