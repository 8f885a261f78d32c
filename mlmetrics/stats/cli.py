"""``mlmetrics compare``: paired comparison of models scored on the same samples (saved reports
with per-image records, saved logits files or logits stores), or ``--standardize``: dataset B's
top-1 accuracy reweighted to dataset A's label-count mix.

    mlmetrics compare a.json b.json
    mlmetrics compare store/ --forest diff.png --out diff.json
    mlmetrics compare v1.json v2.json --standardize
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from ..cli.args import int_at_least, topk
from .bootstrap import DEFAULT_REPLICATES
from .intervals import METHODS


def _level(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number in (0, 1), got {s!r}")
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"a number in (0, 1), e.g. 0.95, got {s!r}")
    return v


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", help="paired comparison of models on the same samples (intervals, McNemar, verdicts)",
        description="Compare models scored on the same samples: the difference of every metric with its paired "
                    "bootstrap interval, McNemar's exact test for per-sample hit metrics (top-k, ReaL top-k, strict "
                    "variable top-k) and a verdict. Inputs: JSON reports written with --per-image, logits files "
                    "(eval --save-logits) or logits store folders (every model in them). The first model is the "
                    "baseline.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="report .json, logits file or logits store folder")
    p.add_argument("--names", help="comma-separated model names (default: from the inputs)")
    p.add_argument("--metrics", help="comma-separated metrics to compare (default: every shared metric)")
    p.add_argument("--replicates", type=int_at_least("--replicates", 2), default=DEFAULT_REPLICATES,
                   help=f"bootstrap replicates (default {DEFAULT_REPLICATES})")
    p.add_argument("--level", type=_level, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--method", choices=METHODS, default="percentile", help="interval method (default percentile)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--topk", type=topk, default=(1, 5), help="comma-separated k values (default 1,5)")
    p.add_argument("--standardize", action="store_true",
                   help="two inputs on different datasets A and B: B's top-1 accuracy reweighted to A's label-count "
                        "mix (1, 2, 3, 4+ labels), and A's minus B's accuracy split into the part the mix explains "
                        "and the rest")
    p.add_argument("--out", metavar="JSON", help="write the comparison as JSON")
    p.add_argument("--csv", metavar="CSV", help="write the comparison rows as CSV")
    p.add_argument("--forest", metavar="PNG", help="write a forest plot of the differences")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors (still writes files)")
    return p


def _standardize(args) -> dict:
    from .standardize import per_sample_from_report, standardize

    if len(args.inputs) != 2 or not all(s.endswith(".json") for s in args.inputs):
        raise ValueError("--standardize takes two JSON reports (dataset A, then dataset B) written with --per-image")
    (ha, ga), (hb, gb) = (per_sample_from_report(p) for p in args.inputs)
    names = ["no label", "1 label", "2 labels", "3 labels", "4+ labels"]
    return standardize(ha, ga, hb, gb, replicates=args.replicates, seed=args.seed, level=args.level,
                       method=args.method, group_names=names)


def _standardize_text(r: dict, a: str, b: str) -> str:
    iv = r["intervals"]
    pct = f"{100 * r['bootstrap']['level']:g}%"

    def line(label, k):
        return f"  {label:<34} {r[k]:+.4f}  [{iv[k]['low']:+.4f}, {iv[k]['high']:+.4f}]"

    out = [f"top-1 accuracy of {b} standardised to the label-count mix of {a} ({pct} intervals, "
           f"{r['bootstrap']['replicates']} replicates)",
           f"  {'group':<12} {'share A':>8} {'share B':>8} {'acc A':>7} {'acc B':>7}"]
    for g in r["groups"]:
        fa = "-" if g["accuracy_a"] is None else f"{g['accuracy_a']:.4f}"
        fb = "-" if g["accuracy_b"] is None else f"{g['accuracy_b']:.4f}"
        out.append(f"  {str(g['group']):<12} {g['share_a']:>8.3f} {g['share_b']:>8.3f} {fa:>7} {fb:>7}")
    out += [line(f"accuracy {a}", "accuracy_a"), line(f"accuracy {b}", "accuracy_b"),
            line(f"{b} at {a}'s mix", "standardized_b"), line(f"drop ({a} - {b})", "drop"),
            line("  explained by the mix", "explained_by_mix"), line("  not explained (within groups)", "unexplained")]
    return "\n".join(out)


def run(args) -> int:
    from .compare import compare
    from .scores import load

    names = [s.strip() for s in args.names.split(",")] if args.names else None
    if args.standardize:
        r = _standardize(args)
        a, b = names or [Path(p).stem for p in args.inputs]
        if not args.quiet:
            print(_standardize_text(r, a, b))
        if args.out:
            _write_json(args.out, {"standardize": r})
        return 0
    models = []
    for j, path in enumerate(args.inputs):
        models += load(path, names[len(models):] if names else None, topk=args.topk, replicates=args.replicates,
                       seed=args.seed)
    if len(models) < 2:
        raise ValueError(f"compare needs two or more models; the inputs hold {len(models)}")
    if names and len(names) != len(models):
        raise ValueError(f"--names lists {len(names)} names for {len(models)} models")
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    cmp = compare(*models, level=args.level, method=args.method, metrics=metrics)
    if not cmp.rows:
        raise ValueError("the models share no metric" + (f" among {metrics}" if metrics else ""))
    if not args.quiet:
        print(cmp.table())
    if args.out:
        _write_json(args.out, {"comparison": cmp.to_dict()})
    if args.csv:
        _write_csv(args.csv, cmp.rows)
    if args.forest:
        from ..report.forest import forest_plot

        forest_plot(cmp.rows, args.forest)
        if not args.quiet:
            print(f"wrote {args.forest}")
    return 0


def _clean(v):
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def _write_json(path: str, obj: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(_clean(obj), f, indent=1, allow_nan=False)


def _write_csv(path: str, rows: list[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)
