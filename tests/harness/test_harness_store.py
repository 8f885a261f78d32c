"""The logits store: written by eval --save-logits, opened by NumPy / safetensors without
mlmetrics, re-scored (every model x every label source) equal to the live scores."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlmetrics import LabelSets
from mlmetrics.cli import main
from mlmetrics.harness import StoreError, open_source, rescore, run_eval, write_store
from mlmetrics.metrics import ClassificationMetrics
from mlmetrics.report import jsonable

from .helpers import FAST, close, val_folder

MODEL = "test_efficientnet"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("store")
    data = val_folder(tmp / "val", n=8)
    torch.manual_seed(0)
    out = {}
    for dtype in ("fp32", "fp16", "bf16"):
        torch.manual_seed(0)
        out[dtype] = run_eval(model=MODEL, data=str(data), save_logits_path=str(tmp / dtype), logits_dtype=dtype,
                              **FAST)
    return tmp, out


def test_fp32_store_rescores_to_the_live_report(live):
    tmp, out = live
    rep, res, _ = out["fp32"]
    ((re, _, _),) = rescore([str(tmp / "fp32")])
    close(re["metrics"], rep["metrics"])
    assert re["subgroups"] == rep["subgroups"]
    assert re["model"]["model"] == MODEL and re["num_scored"] == rep["num_scored"] == 8


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_compact_stores_rescore_to_the_rounded_logits(live, dtype):
    tmp, out = live
    rep, res, _ = out[dtype]
    ((re, _, _),) = rescore([str(tmp / dtype)])
    torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    index = json.loads((tmp / dtype / "index.json").read_text())  # plain JSON
    entry = index["models"][0]
    if dtype == "fp16":
        x = torch.from_numpy(np.load(tmp / dtype / entry["file"]))  # plain NumPy
    else:
        from safetensors.torch import load_file

        x = load_file(str(tmp / dtype / entry["file"]))["logits"]  # plain safetensors
    assert x.dtype == torch_dtype and entry["dtype"] == str(torch_dtype).replace("torch.", "")
    assert torch.equal(x, res.logits.to(torch_dtype))
    rows = torch.from_numpy(np.load(tmp / dtype / entry["rows"]))  # the corrupt 9th file has no row
    assert rows.tolist() == list(range(8))
    cm = ClassificationMetrics(1000, topk=(1, 5), label_sets=LabelSets.from_lists(index["labels"], 1000),
                               nonfinite="ignore")
    cm.update(x, sample_index=rows)
    close(re["metrics"], jsonable(cm.compute()))


def test_rescore_every_model_against_every_label_source(live, tmp_path, capsys):
    tmp, out = live
    # a second model in the fp32 store, and an annotation file for the same images
    store = tmp_path / "two"
    rep, res, _ = out["fp32"]
    index = json.loads((tmp / "fp32" / "index.json").read_text())
    other = res.logits.flip(1)
    models = [{"name": "a", "logits": res.logits, "rows": res.records.index},
              {"name": "b", "logits": other, "rows": res.records.index}]
    write_store(store, images=index["images"], targets=None,
                label_sets=LabelSets.from_lists(index["labels"], 1000), label_source="real", data=None, models=models,
                dtype="fp32")
    ann = {f: {"labels": [i % 3, 500], "target": i % 3} for i, f in enumerate(index["images"])}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    argv = ["rescore", str(store), "--labels", "real", "--labels", str(tmp_path / "ann.json"),
            "--leaderboard", str(tmp_path / "b.md"), "--leaderboard", str(tmp_path / "b.csv"),
            "--leaderboard", str(tmp_path / "b.json"), "--out", str(tmp_path / "all.json")]
    assert main(argv) == 0
    board = json.loads((tmp_path / "b.json").read_text())
    assert len(board) == 4 and {(r["model"], r["labels"].split(":")[0]) for r in board} == {
        ("a", "real"), ("b", "real"), ("a", "annotations"), ("b", "annotations")}
    reports = json.loads((tmp_path / "all.json").read_text())["reports"]
    for r in reports:  # each number is that label source's metrics on that model's logits
        x = res.logits if r["model"]["model"] == "a" else other
        if r["dataset"]["labels"].startswith("real"):
            sets, target = LabelSets.from_lists(index["labels"], 1000), None
        else:
            sets = LabelSets.from_lists([[i % 3, 500] for i in range(9)], 1000)
            target = torch.tensor([i % 3 for i in range(9)])
        cm = ClassificationMetrics(1000, topk=(1, 5), label_sets=sets, nonfinite="ignore")
        cm.update(x, target=None if target is None else target[:8], sample_index=torch.arange(8))
        close(r["metrics"], jsonable(cm.compute()))
    assert (tmp_path / "b.md").read_text().startswith("| model | labels |")
    assert (tmp_path / "b.csv").read_text().startswith("model,labels,n")


def test_store_of_another_dataset_is_refused(live, tmp_path):
    tmp, out = live
    rep, res, _ = out["fp32"]
    with pytest.raises(StoreError, match="another dataset"):
        write_store(tmp / "fp32", images=["x.png"], targets=None, label_sets=None, label_source=None, data=None,
                    models=[{"name": "x", "logits": torch.zeros(1, 10), "rows": torch.arange(1)}])


@pytest.mark.parametrize("fmt", ["npy64", "npy16", "npz", "npz_key", "pt", "pt_dict", "safetensors", "bf16pt"])
def test_rescore_reads_the_files_users_have(tmp_path, fmt):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 10, generator=g)
    path = tmp_path / "l"
    if fmt == "npy64":
        spec = str(path) + ".npy"
        np.save(spec, x.double().numpy())
    elif fmt == "npy16":
        spec = str(path) + ".npy"
        np.save(spec, x.half().numpy())
    elif fmt == "npz":
        spec = str(path) + ".npz"
        np.savez(spec, logits=x.numpy(), other=np.zeros(3))
    elif fmt == "npz_key":
        np.savez(str(path) + ".npz", out=x.numpy(), other=np.zeros(3))
        spec = str(path) + ".npz:out"
    elif fmt == "pt":
        spec = str(path) + ".pt"
        torch.save(x, spec)
    elif fmt == "pt_dict":
        spec = str(path) + ".pt"
        torch.save({"logits": x, "epoch": 3}, spec)
    elif fmt == "bf16pt":
        spec = str(path) + ".pt"
        torch.save(x.bfloat16(), spec)
    else:
        from safetensors.torch import save_file

        spec = str(path) + ".safetensors"
        save_file({"logits": x}, spec)
    (src,) = open_source(spec)
    assert src.logits.shape == (6, 10)
    torch.testing.assert_close(src.logits.float(), x, rtol=1e-2, atol=1e-2)
