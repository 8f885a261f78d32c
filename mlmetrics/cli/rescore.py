"""``mlmetrics rescore``: stored logits -> reports and a leaderboard, no model."""
from __future__ import annotations

import argparse

from .args import add_output_args, intervals_kwargs

HELP = "re-score stored logits (every model x every label source) without the models"


def add_parser(sub) -> argparse.ArgumentParser:
    s = sub.add_parser("rescore", help=HELP,
                       description="Score every model of a logits store (eval --save-logits DIR) or logits file "
                                   "(.npy float16/32/64, .npz, .pt, .safetensors; FILE:KEY names an array) "
                                   "against every --labels source, reading each model's logits once.")
    s.add_argument("sources", nargs="*", metavar="DIR|FILE", help="logits stores or files")
    s.add_argument("--logits", action="append", default=[], metavar="FILE", help="a logits file (same as a source)")
    s.add_argument("--labels", action="append", default=None,
                   help="label source, repeatable: auto (saved with the logits, else ReaL for ImageNet val), "
                        "saved, real, real:PATH, none, or an annotation file")
    s.add_argument("--targets", metavar="FILE", help="single-label targets (see eval --targets)")
    s.add_argument("--class-subset", default="saved",
                   help="saved (default: as stored), none, imagenet_a, imagenet_r, or a file of class indices")
    s.add_argument("--device", default="cpu")
    s.add_argument("--subgroups", action=argparse.BooleanOptionalAction, default=None,
                   help="per-subgroup tables in the reports (default: with one report, or with --out / --plots)")
    add_output_args(s)
    return s


def run(args) -> int:
    from ..harness import rescore
    from .output import emit

    sources = list(args.sources) + list(args.logits)
    if not sources:
        raise ValueError("give a logits store folder or file (eval --save-logits DIR writes one)")
    out = rescore(sources, labels=args.labels or ["auto"], targets_file=args.targets,
                      class_subset=args.class_subset, topk=args.topk, ece_bins=args.ece_bins, device=args.device,
                      per_image=args.per_image, subgroups=args.subgroups if args.subgroups is not None else (True if args.out or args.plots else None),
                      metrics_kwargs=intervals_kwargs(args))
    reports = [rep for rep, _, _ in out]
    emit(reports, args, [rec for _, rec, _ in out], [namer for _, _, namer in out],
         [True if rep["dataset"].get("has_targets") else None for rep in reports])
    return 0
