"""Several models in one run: images decoded once per preprocessing config, each model
scored on its own; equal (logits bit for bit, reports) to one run per model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlmetrics.cli import main
from mlmetrics.harness import ModelSpec, open_store, parse_model_spec, read_models_file, run_eval, run_eval_many

from .helpers import FAST, checkpoint, comparable, val_folder

# test_efficientnet and test_byobnet share a preprocessing config (ImageNet mean/std);
# test_resnet normalises with 0.5 / 0.5, so it gets its own decode
MODELS = (("test_efficientnet", 1), ("test_byobnet", 2), ("test_resnet", 3))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi")
    data = val_folder(tmp / "val", n=6)
    specs = [ModelSpec(n, checkpoint(tmp, n, seed)) for n, seed in MODELS]
    together = run_eval_many(specs, data=str(data), per_image=True, save_logits=str(tmp / "together"),
                             logits_dtype="fp32", **FAST)
    alone = [run_eval(model=s.name, checkpoint=s.checkpoint, data=str(data), per_image=True,
                      save_logits_path=str(tmp / f"alone-{s.name}"), logits_dtype="fp32", **FAST) for s in specs]
    return tmp, specs, together, alone


def test_one_run_equals_separate_runs(setup):
    tmp, specs, together, alone = setup
    assert [rep["config"]["models_sharing_decode"] for rep, _, _ in together] == [2, 2, 1]
    for (rep_t, res_t, _), (rep_a, res_a, _) in zip(together, alone):
        assert torch.equal(res_t.logits, res_a.logits)  # bit-identical
        assert comparable(rep_t) == comparable(rep_a)
    assert [r["model"]["model"] for r, _, _ in together] == [n for n, _ in MODELS]


def test_store_of_a_multi_model_run(setup):
    tmp, specs, together, alone = setup
    stored = {s.name: s for s in open_store(tmp / "together")}
    assert sorted(stored) == sorted(n for n, _ in MODELS)
    for rep, res, _ in together:
        src = stored[rep["model"]["model"]]
        assert src.rows.tolist() == res.records.index.tolist()  # the corrupt file has no row
        assert torch.equal(src.logits, res.logits)
        raw = np.load(src.path)  # plain NumPy, no mlmetrics
        assert raw.dtype == np.float32 and raw.shape == tuple(res.logits.shape)


def test_model_specs_and_models_file(tmp_path):
    assert parse_model_spec("resnet50") == ModelSpec("resnet50")
    assert parse_model_spec("resnet50:w/r.pth") == ModelSpec("resnet50", "w/r.pth")
    assert parse_model_spec("hf-hub:timm/vit:x.pth") == ModelSpec("hf-hub:timm/vit", "x.pth")
    (tmp_path / "w.pth").write_bytes(b"")
    (tmp_path / "models.txt").write_text("# study\nresnet50:w.pth\n\nvit_base_patch16_224  # no weights\n")
    assert read_models_file(str(tmp_path / "models.txt")) == [
        ModelSpec("resnet50", str(tmp_path / "w.pth")), ModelSpec("vit_base_patch16_224")]


def test_cli_several_models_prints_a_leaderboard(setup, capsys):
    tmp, specs, together, _ = setup
    out = tmp / "board.md"
    argv = ["eval", "--data", str(tmp / "val"), "--img-size", "64", "-b", "4", "-j", "0", "--device", "cpu",
            "--no-progress", "--leaderboard", str(out)]
    for s in specs[:2]:
        argv += ["--model", f"{s.name}:{s.checkpoint}"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| model | labels |" in printed and "test_byobnet" in printed
    board = out.read_text()
    for rep, _, _ in together[:2]:
        assert f"{100 * rep['metrics']['real_top1']:.2f}" in board
