"""Building a timm model offline: weights from a local checkpoint (with key remapping) or
from timm's pretrained weights when they are already on disk."""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "module", "net", "params")
_PREFIXES = ("module.", "model.", "_orig_mod.", "net.", "backbone.")


class CheckpointError(RuntimeError):
    """A checkpoint could not be matched to the model."""


class PretrainedUnavailable(RuntimeError):
    """timm would need the network to fetch the pretrained weights."""


# ---------------------------------------------------------------------------------------
# Reading a checkpoint file
# ---------------------------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike, *, use_ema: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of a state dict / timm / torch checkpoint file (.pth/.pt/.bin/.safetensors).

    Wrapped checkpoints (``{"state_dict": ...}``, ``{"model": ...}``, timm's
    ``state_dict_ema``) are unwrapped; ``module.`` / ``_orig_mod.`` prefixes stripped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--checkpoint {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path), device="cpu")
        except SafetensorError as e:
            raise CheckpointError(f"--checkpoint {path}: not a safetensors file ({e})") from None
    else:
        obj = _torch_load(path)
    sd = _unwrap(obj, use_ema=use_ema)
    if not sd:
        raise CheckpointError(f"--checkpoint {path}: holds no tensors")
    return sd


def _torch_load(path: Path) -> Any:
    """``torch.load`` with weights only, then (for trusted timm training checkpoints that
    pickle argparse args) with full unpickling; a file that is no checkpoint is a CheckpointError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError, EOFError, KeyError, ... on a non-checkpoint
        if not _is_torch_archive(path):
            raise CheckpointError(f"--checkpoint {path}: not a torch checkpoint "
                                  f"({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
        warnings.warn(
            f"{path.name}: not loadable with weights_only=True ({type(e).__name__}); loading it "
            "with full unpickling (only do this for files you trust)", RuntimeWarning, stacklevel=3)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise CheckpointError(f"--checkpoint {path}: cannot be read as a torch checkpoint "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None


def _is_torch_archive(path: Path) -> bool:
    """A zip archive (torch.save's format) or a legacy pickle (starts with the pickle protocol byte)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK") or head[:1] == b"\x80"


def _unwrap(obj: Any, *, use_ema: bool) -> dict[str, torch.Tensor]:
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    keys = _WRAPPER_KEYS if use_ema else tuple(k for k in _WRAPPER_KEYS if "ema" not in k)
    for k in keys:
        if k in obj and isinstance(obj[k], (Mapping, torch.nn.Module)):
            return _unwrap(obj[k], use_ema=use_ema)
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for p in _PREFIXES:
        if sd and all(k.startswith(p) for k in sd):
            sd = {k[len(p):]: v for k, v in sd.items()}
    return sd


# ---------------------------------------------------------------------------------------
# Matching a state dict to a model
# ---------------------------------------------------------------------------------------
def _is_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def remap_state_dict(sd: Mapping[str, torch.Tensor], model: torch.nn.Module,
                     *, allow_order: bool = True) -> tuple[dict[str, torch.Tensor], str]:
    """Map ``sd`` onto ``model``'s keys. Returns (state dict for ``load_state_dict``, how).

    1. by name (after prefix stripping), when every model tensor is there with its shape;
    2. by the model module's ``checkpoint_filter_fn`` (timm's converter for original weights);
    3. by order: the i-th tensor of the file goes to the i-th tensor of the model, when the
       two lists (BatchNorm ``num_batches_tracked`` counters aside) have the same length
       and every pair the same shape. Offline weight files often name keys differently
       (e.g. ``_conv_stem.weight`` vs ``conv_stem.weight``).
    """
    target = model.state_dict()
    need = [k for k in target if not _is_counter(k)]

    def by_name(src):
        if all(k in src and tuple(src[k].shape) == tuple(target[k].shape) for k in need):
            return {k: src[k] for k in target if k in src}
        return None

    out = by_name(sd)
    if out is not None:
        return out, "by name"
    mod = sys.modules.get(type(model).__module__)
    fn = getattr(mod, "checkpoint_filter_fn", None)
    if fn is not None:
        try:
            out = by_name(fn(dict(sd), model))
        except Exception:
            out = None
        if out is not None:
            return out, "by name after timm's checkpoint_filter_fn"
    src = [(k, v) for k, v in sd.items() if not _is_counter(k)]
    if allow_order and len(src) == len(need):
        bad = [(a, b) for a, (b, v) in zip(need, src) if tuple(v.shape) != tuple(target[a].shape)]
        if not bad:
            return {a: v for a, (_, v) in zip(need, src)}, "by tensor order"
    missing = [k for k in need if k not in sd]
    shape = [k for k in need if k in sd and tuple(sd[k].shape) != tuple(target[k].shape)]
    msg = (f"checkpoint does not fit {type(model).__name__}: {len(src)} tensors in the file vs "
           f"{len(need)} in the model; {len(missing)} model keys missing (e.g. {missing[:3]}), "
           f"{len(shape)} with another shape (e.g. "
           f"{[(k, tuple(sd[k].shape), tuple(target[k].shape)) for k in shape[:3]]})")
    if allow_order and len(src) == len(need):
        a, b = next((a, b) for a, (b, v) in zip(need, src) if tuple(v.shape) != tuple(target[a].shape))
        msg += f"; in order, the first shape mismatch is {b} {tuple(sd[b].shape)} -> {a} {tuple(target[a].shape)}"
    raise CheckpointError(msg + ". Check --model and --num-classes.")


def load_checkpoint(model: torch.nn.Module, path: str | os.PathLike, *, use_ema: bool = True) -> str:
    """Load ``path`` into ``model`` (see :func:`remap_state_dict`). Returns how keys matched."""
    sd, how = remap_state_dict(read_checkpoint(path, use_ema=use_ema), model)
    model.load_state_dict(sd, strict=False)
    return how


def _checkpoint_num_classes(sd: Mapping[str, torch.Tensor], model: torch.nn.Module) -> int | None:
    """The classifier width of a checkpoint for ``model``'s architecture when it differs from
    the model's (a fine-tuned head), found by the classifier's key or, failing that, as the
    last 2-D tensor of the file when the model's last 2-D tensor is its classifier."""
    cls = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    names = [cls] if isinstance(cls, str) else list(cls or [])
    target = model.state_dict()
    for n in names:
        w = sd.get(f"{n}.weight")
        tw = target.get(f"{n}.weight")
        if w is not None and tw is not None and w.dim() == tw.dim() and w.shape[1:] == tw.shape[1:] \
                and w.shape[0] != tw.shape[0]:
            return int(w.shape[0])
    if len(names) == 1:
        last_model = [k for k, v in target.items() if v.dim() >= 2][-1:]
        last_file = [v for k, v in sd.items() if v.dim() >= 2][-1:]
        if last_model and last_file and last_model[0] == f"{names[0]}.weight":
            w, tw = last_file[0], target[last_model[0]]
            if w.dim() == tw.dim() and w.shape[1:] == tw.shape[1:] and w.shape[0] != tw.shape[0]:
                return int(w.shape[0])
    return None


# ---------------------------------------------------------------------------------------
# timm pretrained weights, offline
# ---------------------------------------------------------------------------------------
def _cached_pretrained(cfg) -> str | None:
    """A local file timm would load for ``cfg`` without the network, or None."""
    if cfg is None:
        return None
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    f = d.get("file")
    if f and Path(f).is_file():
        return str(f)
    hub = d.get("hf_hub_id")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache

            repo, _, rev = hub.partition("@")
            for name in (d.get("hf_hub_filename"), "model.safetensors", "pytorch_model.bin",
                         "open_clip_pytorch_model.bin", "open_clip_model.safetensors"):
                if name:
                    p = try_to_load_from_cache(repo, name, revision=rev or None)
                    if isinstance(p, str) and Path(p).is_file():
                        return p
        except Exception:
            pass
    url = d.get("url")
    if url:
        p = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])
        if p.is_file():
            return str(p)
    return None


@contextlib.contextmanager
def _hub_offline(on: bool):
    """Hugging Face hub in offline mode (cache only) for the duration, restored after."""
    if not on:
        yield
        return
    old_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    hc = None
    try:
        import huggingface_hub.constants as hc

        old_const = hc.HF_HUB_OFFLINE
        hc.HF_HUB_OFFLINE = True
    except Exception:
        pass
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env
        if hc is not None:
            hc.HF_HUB_OFFLINE = old_const


def _suggest(name: str, known: list[str]) -> str:
    """"; did you mean ...?" with the closest known names, or ""."""
    import difflib

    base = name.split(".")[0].lower()
    close = difflib.get_close_matches(base, known, n=5, cutoff=0.6)
    close += [m for m in known if base in m and m not in close][: max(0, 5 - len(close))]
    return f"; did you mean {', '.join(close)}?" if close else " (timm.list_models() lists the names)"


def create_model(name: str, *, checkpoint: str | None = None, pretrained: bool = False,
                 num_classes: int | None = None, allow_download: bool = False,
                 use_ema: bool = True) -> tuple[torch.nn.Module, dict]:
    """A timm model in eval mode and a dict describing where its weights came from."""
    from .deps import require

    timm = require("timm")
    if checkpoint and pretrained:
        raise ValueError("give either --checkpoint or --pretrained, not both")
    if not timm.is_model(name) and not name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        raise ValueError(f"--model {name!r}: not a timm model" + _suggest(name, timm.list_models()))
    kw = {} if num_classes is None else {"num_classes": int(num_classes)}
    info: dict[str, Any] = {"model": name, "weights": "random init"}
    if pretrained:
        cfg = None
        try:
            from timm.models import get_pretrained_cfg

            cfg = get_pretrained_cfg(name)
        except Exception:
            pass
        local = _cached_pretrained(cfg)
        if local is None and not allow_download:
            raise PretrainedUnavailable(
                f"--pretrained: timm has no local copy of the weights for {name!r} and this tool does "
                "not download at run time. Pass --checkpoint PATH to a weight file (state dict, timm "
                "or torch checkpoint; keys are remapped by order where shapes match), or put the file "
                "in the Hugging Face / torch hub cache, or add --allow-download on a networked machine.")
        with _hub_offline(local is not None and not allow_download):
            model = timm.create_model(name, pretrained=True, **kw)
        info["weights"] = f"timm pretrained ({local or 'downloaded'})"
    else:
        model = timm.create_model(name, pretrained=False, **kw)
        if checkpoint:
            sd = read_checkpoint(checkpoint, use_ema=use_ema)
            try:
                matched, how = remap_state_dict(sd, model)
            except CheckpointError:
                k = None if num_classes is not None else _checkpoint_num_classes(sd, model)
                if k is None:
                    raise
                model = timm.create_model(name, pretrained=False, num_classes=k)
                matched, how = remap_state_dict(sd, model)
                how += f" (num_classes={k} read from the checkpoint's classifier)"
            model.load_state_dict(matched, strict=False)
            info["weights"] = str(checkpoint)
            info["key_matching"] = how
    model.eval()
    info["num_classes"] = int(getattr(model, "num_classes", 0) or 0)
    info["param_count"] = sum(p.numel() for p in model.parameters())
    return model, info


def data_config(model: torch.nn.Module, **overrides) -> dict:
    """timm's eval data config for ``model`` (its pretrained config), with overrides."""
    from .deps import require

    resolve_data_config = require("timm.data").resolve_data_config
    args = {k: v for k, v in overrides.items() if v is not None}
    return resolve_data_config(args, model=model)
