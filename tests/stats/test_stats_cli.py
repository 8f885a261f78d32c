"""``mlmetrics compare`` (mlmetrics.stats.cli): saved logits and saved reports of two models on the
same samples -> the verdict table, JSON, CSV and a forest plot; --standardize on two reports; user
errors are one-line messages."""
import argparse
import json

import numpy as np
import pytest
import torch

from mlmetrics.stats import cli

N, C = 300, 10


def _parse(argv):
    ap = argparse.ArgumentParser(prog="mlmetrics")
    sub = ap.add_subparsers(dest="command")
    cli.add_parser(sub)
    return ap.parse_args(["compare", *argv])


def _logits(seed, signal):
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, C, (N,), generator=g)
    x = torch.randn(N, C, generator=torch.Generator().manual_seed(seed))
    x[torch.arange(N), t] += signal
    return x, t


def _save_npy(path, x, t, labels):
    np.save(path, x.numpy())
    meta = {"images": [f"img{i:04d}.jpg" for i in range(N)], "sample_index": list(range(N)), "target": t.tolist(),
            "labels": labels, "num_classes": C}
    with open(str(path) + ".meta.json", "w") as f:
        json.dump(meta, f)


def _report(x, t, labels):
    top5 = x.topk(5, dim=1).indices.tolist()
    return {"model": {"model": "m"}, "per_image": [
        {"image": f"img{i:04d}.jpg", "top5": [{"index": c, "name": str(c), "prob": 0.1} for c in top5[i]],
         "labels": labels[i], "target": int(t[i])} for i in range(N)]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmp")
    xa, t = _logits(1, 1.0)
    xb, _ = _logits(2, 2.5)
    labels = [[int(t[i])] + ([int(t[i] + 1) % C] if i % 3 == 0 else []) for i in range(N)]
    _save_npy(d / "a.npy", xa, t, labels)
    _save_npy(d / "b.npy", xb, t, labels)
    for name, x in (("a", xa), ("b", xb)):
        with open(d / f"{name}.json", "w") as f:
            json.dump(_report(x, t, labels), f)
    return d, xa, xb, t


def test_compare_saved_logits(files, capsys, tmp_path):
    d, xa, xb, t = files
    args = _parse([str(d / "a.npy"), str(d / "b.npy"), "--replicates", "200", "--out", str(tmp_path / "c.json"),
                   "--csv", str(tmp_path / "c.csv"), "--forest", str(tmp_path / "f.png")])
    assert cli.run(args) == 0
    out = capsys.readouterr().out
    assert "b vs a" in out and "top1" in out and "nll" in out and "b better" in out
    rep = json.load(open(tmp_path / "c.json"))["comparison"]
    rows = {r["metric"]: r for r in rep["rows"]}
    acc_a = float((xa.argmax(1) == t).double().mean())
    acc_b = float((xb.argmax(1) == t).double().mean())
    assert rows["top1"]["difference"] == pytest.approx(acc_b - acc_a)
    assert rows["top1"]["mcnemar_p"] < 0.05 and rows["real_top1"]["mcnemar_p"] is not None
    assert rep["replicates"] == 200
    assert (tmp_path / "c.csv").read_text().startswith("model,")
    assert (tmp_path / "f.png").stat().st_size > 5000


def test_compare_saved_reports(files, capsys):
    d, xa, xb, t = files
    assert cli.run(_parse([str(d / "a.json"), str(d / "b.json"), "--replicates", "200", "--names", "A,B"])) == 0
    out = capsys.readouterr().out
    assert "B vs A" in out and "variable_topk_strict" in out and "real_top5" in out


def test_report_and_logits_give_the_same_mcnemar(files):
    from mlmetrics.stats import compare
    from mlmetrics.stats.scores import load

    d = files[0]
    rj = {r["metric"]: r for r in compare(*load(d / "a.json", ["a"]), *load(d / "b.json", ["b"])).rows}
    rl = {r["metric"]: r for r in compare(*load(d / "a.npy"), *load(d / "b.npy")).rows}
    for k in ("top1", "top5", "real_top1"):
        assert rj[k]["mcnemar_p"] == rl[k]["mcnemar_p"], k
        assert rj[k]["difference"] == pytest.approx(rl[k]["difference"]), k


def test_standardize_two_reports(files, capsys):
    d = files[0]
    assert cli.run(_parse([str(d / "a.json"), str(d / "b.json"), "--standardize", "--replicates", "100"])) == 0
    out = capsys.readouterr().out
    assert "explained by the mix" in out and "1 label" in out


@pytest.mark.parametrize("argv,msg", [
    (["missing.json", "x.json"], "no such file"),
    (["{d}/a.npy"], "two or more models"),
    (["{d}/a.npy", "{d}/b.npy", "--metrics", "nope"], "share no metric"),
])
def test_user_errors(files, argv, msg):
    d = files[0]
    with pytest.raises((ValueError, FileNotFoundError), match=msg):
        cli.run(_parse([a.format(d=d) for a in argv]))


def test_bad_level_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        _parse(["a.json", "b.json", "--level", "95"])
    assert "(0, 1)" in capsys.readouterr().err
