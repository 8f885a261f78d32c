"""Checkpoint loading: by name, wrapped timm/torch checkpoints, key remapping by tensor order,
clear errors; --pretrained never touches the network."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import timm
import torch

from mlmetrics.cli import main
from mlmetrics.harness import CheckpointError, PretrainedUnavailable, create_model, read_checkpoint

MODEL = "test_efficientnet"


@pytest.fixture(scope="module")
def reference_model():
    torch.manual_seed(0)
    return timm.create_model(MODEL).eval()


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not k.endswith("num_batches_tracked"))


def _renamed(sd):
    """Other key names, same tensor order (like the EfficientNet-Lite0 package file), no counters."""
    return OrderedDict((f"_layer{i}.{k.rsplit('.', 1)[-1]}", v) for i, (k, v) in enumerate(sd.items())
                       if not k.endswith("num_batches_tracked"))


@pytest.mark.parametrize("form", ["plain", "timm_ema", "ddp_module", "renamed", "renamed_nested", "safetensors"])
def test_checkpoint_forms(reference_model, tmp_path, form):
    sd = reference_model.state_dict()
    path = tmp_path / "w.pth"
    if form == "plain":
        torch.save(sd, path)
    elif form == "timm_ema":  # timm train checkpoint: EMA weights win, args pickled
        junk = {k: torch.zeros_like(v) for k, v in sd.items()}
        torch.save({"epoch": 3, "arch": MODEL, "state_dict": junk, "state_dict_ema": sd, "args": {"lr": 0.1}}, path)
    elif form == "ddp_module":
        torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, path)
    elif form == "renamed":
        torch.save(_renamed(sd), path)
    elif form == "renamed_nested":
        torch.save({"state_dict": _renamed(sd)}, path)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    m, info = create_model(MODEL, checkpoint=str(path))
    assert _same_weights(m, reference_model)
    assert info["key_matching"] == ("by tensor order" if form.startswith("renamed") else "by name")
    assert not m.training


def test_no_ema_flag_takes_state_dict(reference_model, tmp_path):
    sd = reference_model.state_dict()
    torch.save({"state_dict": sd, "state_dict_ema": {k: v + 1 for k, v in sd.items()}}, tmp_path / "w.pth")
    assert _same_weights(create_model(MODEL, checkpoint=str(tmp_path / "w.pth"), use_ema=False)[0], reference_model)


def test_mismatched_checkpoint_errors(reference_model, tmp_path):
    other = timm.create_model(MODEL, num_classes=10).state_dict()
    torch.save(_renamed(other), tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        create_model(MODEL, checkpoint=str(tmp_path / "w.pth"), num_classes=1000)
    # --num-classes makes it fit; without it the head width is read from the checkpoint
    m, _ = create_model(MODEL, checkpoint=str(tmp_path / "w.pth"), num_classes=10)
    assert m.num_classes == 10
    m, info = create_model(MODEL, checkpoint=str(tmp_path / "w.pth"))
    assert m.num_classes == 10 and "num_classes=10" in info["key_matching"]
    torch.save(other, tmp_path / "named.pth")
    m, info = create_model(MODEL, checkpoint=str(tmp_path / "named.pth"))
    assert m.num_classes == 10 and info["key_matching"].startswith("by name")
    sd = dict(list(reference_model.state_dict().items())[:-3])
    torch.save(sd, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match="missing"):
        create_model(MODEL, checkpoint=str(tmp_path / "short.pth"))
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "nope.pth")


def test_pretrained_fails_fast_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(*a, **k):
        raise AssertionError("tried to download")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(PretrainedUnavailable, match="--checkpoint"):
        create_model(MODEL, pretrained=True)
    assert main(["eval", "--model", MODEL, "--pretrained", "--data", str(tmp_path), "-q"]) == 1
    assert "does not download" in capsys.readouterr().err


def test_pretrained_from_local_hub_cache(tmp_path, monkeypatch):
    """--pretrained works offline when timm's weights are already in the Hugging Face cache."""
    import huggingface_hub.constants as hc
    from safetensors.torch import save_file

    repo = tmp_path / "models--timm--test_efficientnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    torch.manual_seed(1)
    ref = timm.create_model(MODEL)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(snap / "model.safetensors"))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    before = hc.HF_HUB_OFFLINE
    m, info = create_model(MODEL, pretrained=True)
    assert "timm pretrained" in info["weights"] and str(snap) in info["weights"]
    assert _same_weights(m, ref)
    assert hc.HF_HUB_OFFLINE == before  # offline mode only while loading
