"""``mlmetrics`` command line. Each subcommand is a module with ``add_parser(subparsers)`` and
``run(args) -> int``, listed in :data:`COMMANDS`; a module that does not import (an optional
part not installed) is left out.

    mlmetrics eval --demo
    mlmetrics eval --model resnet50:resnet50.pth --model vit_base_patch16_224:vit.pth --data /data/imagenet/val \
        --save-logits store/
    mlmetrics rescore store/ --labels real --labels annotations.json --leaderboard board.md
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Sequence

#: subcommand -> module (``add_parser(subparsers)``, ``run(args) -> int``)
COMMANDS = {"eval": "mlmetrics.cli.eval", "rescore": "mlmetrics.cli.rescore", "compare": "mlmetrics.stats.cli"}
#: exceptions that are user errors: one ``mlmetrics <cmd>: error: ...`` line, exit 1
USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError, KeyError, ImportError)


def _modules() -> dict:
    out = {}
    for name, path in COMMANDS.items():
        try:
            out[name] = importlib.import_module(path)
        except ImportError:
            if name in ("eval", "rescore"):
                raise
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mlmetrics", description="Fused multi-label classification metrics: "
                                 "evaluate timm models offline, the multi-label way.")
    ap.add_argument("--version", action="store_true", help="print the version and exit")
    sub = ap.add_subparsers(dest="command")
    for name, mod in _modules().items():
        before = set(sub.choices)
        mod.add_parser(sub)
        for added in set(sub.choices) - before:
            sub.choices[added].set_defaults(_run=mod.run)
    return ap


def _error_line(e: BaseException) -> str:
    msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(msg.split()) or type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.version:
        from .. import __version__

        print(__version__)
        return 0
    if args.command is None:
        ap.print_help()
        return 2
    if getattr(args, "quiet", False):
        warnings.simplefilter("ignore")
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as e:
        if os.environ.get("MLMETRICS_DEBUG") == "1":
            raise
        print(f"mlmetrics {args.command}: error: {_error_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mlmetrics {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
