"""Every user error of the command line ends in ONE ``mlmetrics <cmd>: error: ...`` line that
names the file or flag, with a non-zero exit and no traceback. One row per bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlmetrics.cli import main
from tests.harness.helpers import val_folder

MODEL = "test_efficientnet"
RUN = ["--img-size", "64", "-b", "4", "-j", "0", "--device", "cpu", "--no-progress", "-q"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad and good inputs, by name."""
    d = tmp_path_factory.mktemp("bad")
    val = val_folder(d / "val", n=3, corrupt_last=False)
    f = {"val": val, "dir": d}
    np.save(d / "f64.npy", np.random.default_rng(0).normal(size=(4, 10)))
    np.save(d / "i64.npy", np.arange(40).reshape(4, 10))
    np.save(d / "nan.npy", np.full((4, 10), np.nan, dtype=np.float32))
    np.save(d / "empty.npy", np.zeros((0, 10), dtype=np.float32))
    np.save(d / "vec.npy", np.zeros(10, dtype=np.float32))
    np.save(d / "short.npy", np.zeros((5, 10), dtype=np.float32))
    (d / "short.npy.meta.json").write_text(json.dumps({"target": [1, 2, 3]}))
    torch.save({"scores": torch.zeros(4, 10), "other": torch.zeros(4, 3)}, d / "nologits.pt")
    (d / "junk.pt").write_bytes(b"\x00 not a torch file at all")
    (d / "l.txt").write_text("1 2 3\n")
    np.savez(d / "two.npz", a=np.zeros((4, 10)), b=np.zeros((4, 10)))
    (d / "nested.json").write_text(json.dumps({"x0.png": [[1, 2]], "x1.png": [3], "x2.png": [], "x3.png": [4]}))
    (d / "frac.json").write_text(json.dumps({"x0.png": [1.5], "x1.png": [3], "x2.png": [], "x3.png": [4]}))
    (d / "badjson.json").write_text("{not json")
    np.save(d / "four.npy", np.zeros((4, 10), dtype=np.float32))
    np.save(d / "val3.npy", np.zeros((3, 1000), dtype=np.float32))
    (d / "val3.npy.meta.json").write_text(json.dumps({"images": [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3)]}))
    (d / "real_short.json").write_text(json.dumps([[1], [2]]))
    (d / "not_a_checkpoint.pth").write_text("hello, I am text")
    (d / "syn.txt").write_text("n01440764\nn99999999\nn01443537\n")
    (d / "LOC_val_solution.csv").write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n01440764 1 2 3 4\n")
    ann = {f"ILSVRC2012_val_{i:08d}.JPEG": [i] for i in range(1, 4)}
    (d / "ann3.json").write_text(json.dumps(ann))
    (d / "ann_other.json").write_text(json.dumps([{"image": f"o{i}.png", "labels": [1]} for i in range(7)]))
    f.update({k: str(d / k) for k in ("f64.npy", "i64.npy", "nan.npy", "empty.npy", "vec.npy", "short.npy",
                                      "nologits.pt", "junk.pt", "l.txt", "two.npz", "nested.json", "frac.json",
                                      "badjson.json", "four.npy", "not_a_checkpoint.pth", "syn.txt",
                                      "LOC_val_solution.csv", "ann3.json", "ann_other.json", "val3.npy",
                                      "real_short.json")})
    return f


# (id, argv with {placeholders}, text the error line must contain); exit status 1, or 2 for argparse
CASES = [
    ("rescore int64 npy", ["rescore", "{i64.npy}"], "must be floating point"),
    ("rescore 1-D npy", ["rescore", "{vec.npy}"], "must be [N, C]"),
    ("rescore all-NaN", ["rescore", "{nan.npy}"], "every row holds NaN"),
    ("rescore empty", ["rescore", "{empty.npy}"], "empty logits"),
    ("rescore short sidecar", ["rescore", "{short.npy}"], "holds 3 entries for 5 logits rows"),
    ("rescore pt without logits", ["rescore", "{nologits.pt}"], "no 'logits'"),
    ("rescore junk pt", ["rescore", "{junk.pt}"], "not a torch tensor file"),
    ("rescore txt", ["rescore", "{l.txt}"], "unknown logits file type .txt"),
    ("rescore npz two arrays", ["rescore", "{two.npz}"], "name the array as"),
    ("rescore npz missing key", ["rescore", "{two.npz}:zz"], "no key 'zz'"),
    ("rescore missing file", ["rescore", "{dir}/nope.npy"], "no such logits file"),
    ("rescore nested labels", ["rescore", "{four.npy}", "--labels", "{nested.json}"], "[1, 2]"),
    ("rescore fractional label", ["rescore", "{four.npy}", "--labels", "{frac.json}"], "1.5"),
    ("rescore bad json", ["rescore", "{four.npy}", "--labels", "{badjson.json}"], "badjson.json: not valid JSON"),
    ("rescore labels of another size", ["rescore", "{four.npy}", "--labels", "{ann_other.json}"],
     "a store from another dataset"),
    ("rescore real without names", ["rescore", "{four.npy}", "--labels", "real"], "ReaL labels are for all 1000"),
    ("rescore short ReaL list", ["rescore", "{val3.npy}", "--labels", "real:{real_short.json}"],
     "holds 2 entries, but ILSVRC2012_val_00000003.JPEG is image 3"),
    ("rescore topk > C", ["rescore", "{f64.npy}", "--topk", "1,20"], "--topk 20"),
    ("rescore no source", ["rescore"], "give a logits store"),
    ("rescore bad leaderboard", ["rescore", "{f64.npy}", "--leaderboard", "{dir}/b.xlsx"], "use a .md, .csv or .json"),
    ("eval model typo", ["eval", "--model", "resnet5O", "--data", "{val}"], "did you mean"),
    ("eval missing checkpoint", ["eval", "--model", MODEL, "--checkpoint", "{dir}/nope.pth", "--data", "{val}"],
     "no such file"),
    ("eval not a checkpoint", ["eval", "--model", MODEL, "--checkpoint", "{not_a_checkpoint.pth}", "--data", "{val}"],
     "not a torch checkpoint"),
    ("eval unknown synset", ["eval", "--model", MODEL, "--data", "{val}", "--targets", "{syn.txt}"],
     "'n99999999' is not an ImageNet-1k synset"),
    ("eval LOC csv missing images", ["eval", "--model", MODEL, "--data", "{val}", "--targets",
                                     "{LOC_val_solution.csv}"], "2 of 3 images are not in the file"),
    ("eval nested labels", ["eval", "--model", MODEL, "--data", "{val}", "--labels", "{nested.json}"], "[1, 2]"),
    ("eval missing labels file", ["eval", "--model", MODEL, "--data", "{val}", "--labels", "{dir}/no.json"],
     "no such file"),
    ("eval topk > C", ["eval", "--model", MODEL, "--data", "{val}", "--topk", "1,2000"], "--topk 2000"),
    ("eval no model", ["eval", "--data", "{val}"], "--model is required"),
    ("eval missing models file", ["eval", "--models", "{dir}/none.txt", "--data", "{val}"], "--models"),
    ("eval two checkpoints", ["eval", "--model", "a", "--model", "b", "--checkpoint", "{f64.npy}", "--data", "{val}"],
     "--checkpoint goes with one --model"),
    ("eval missing data", ["eval", "--model", MODEL, "--data", "{dir}/nowhere"], "--data"),
    ("eval store of another dataset", ["eval", "--model", MODEL, "--data", "{val}", "--save-logits", "{dir}/store"],
     "another dataset"),
    ("eval save-logits file name", ["eval", "--model", MODEL, "--data", "{val}", "--save-logits", "{dir}/l.npy"],
     "give a folder name"),
    ("eval bad device", ["eval", "--model", MODEL, "--data", "{val}", "--device", "gpu7"], "--device"),
    # argparse (exit 2): still one error line naming the flag
    ("eval limit -1", ["eval", "--model", MODEL, "--data", "{val}", "--limit", "-1"], "--limit"),
    ("eval limit 0", ["eval", "--model", MODEL, "--data", "{val}", "--limit", "0"], "--limit"),
    ("eval img-size 0", ["eval", "--model", MODEL, "--data", "{val}", "--img-size", "0"], "--img-size"),
    ("eval topk junk", ["eval", "--model", MODEL, "--data", "{val}", "--topk", "1,x"], "--topk"),
    ("eval crop-pct 2", ["eval", "--model", MODEL, "--data", "{val}", "--crop-pct", "2"], "--crop-pct"),
]


def _store_of_other_dataset(files):
    from mlmetrics.harness import write_store

    write_store(files["dir"] / "store", images=["other.png"], targets=None, label_sets=None, label_source=None,
                data=None, models=[{"name": "m", "logits": torch.zeros(1, 1000), "rows": torch.arange(1)}])


def _fill(arg: str, files: dict) -> str:
    for k, v in files.items():
        arg = arg.replace("{" + k + "}", str(v))
    return arg


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_one_error_line(files, case, capsys):
    name, argv, expected = case
    if name == "eval store of another dataset" and not (files["dir"] / "store").exists():
        _store_of_other_dataset(files)
    argv = [_fill(a, files) for a in argv]
    if argv[0] == "eval":
        argv = argv[:1] + RUN + argv[1:]  # the case's own flags come last and win
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc not in (0, None), name
    assert err, name
    assert "Traceback" not in "\n".join(err)
    last = err[-1]
    assert last.startswith(f"mlmetrics {argv[0]}: error: "), last
    assert expected in last, last


def test_rescore_takes_float64_and_bfloat16(files, tmp_path, capsys):
    """The dtypes users have are scored (float64 in float32), not refused."""
    assert main(["rescore", files["f64.npy"], "--topk", "1,3", "-q"]) == 0
    torch.save({"logits": torch.randn(4, 10, dtype=torch.float64).bfloat16()}, tmp_path / "b.pt")
    assert main(["rescore", str(tmp_path / "b.pt"), "--out", str(tmp_path / "r.json"), "-q"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["dataset"]["dtype"] == "bfloat16"


def test_missing_extra_is_named(monkeypatch):
    """Without the [eval] extra the harness says which extra to install."""
    import sys

    from mlmetrics.harness.deps import MissingDependency, require

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(MissingDependency, match=r'pip install "mlmetrics\[eval\]"'):
        require("tqdm.auto")
