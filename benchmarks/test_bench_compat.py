"""Groups ``timm_real_b256`` / ``timm_real_full``: the ``RealLabelsImagenet`` drop-in
(``mlmetrics.compat.timm``) against timm's own, on the same 50,000 x 1,000 logits and the 50,000
ReaL sets, fed per batch of 256 (as timm's validate.py does) or in one call. Both give the same
percentages (checked on every run)."""
from __future__ import annotations

import pytest

import benchutil as bu
from benchutil import Shape

SHAPE = Shape(50000, 1000, 5, "float32")
FILES = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(SHAPE.n)]
IMPLS = {"mlmetrics-compat": "ours", "timm-RealLabelsImagenet": "peer"}


def _feed(cls, x, bs):
    r = cls(FILES)
    for i in range(0, x.shape[0], bs):
        r.add_result(x[i:i + bs])
    return r.get_accuracy()


@pytest.mark.parametrize("bs", [256, SHAPE.n], ids=["b256", "full"])
@pytest.mark.parametrize("impl", IMPLS)
def test_real_labels_imagenet(benchmark, impl, bs):
    timm_data = pytest.importorskip("timm.data")
    from mlmetrics.compat.timm import RealLabelsImagenet

    x = bu.logits(SHAPE, "cpu", seed=7)
    cls = RealLabelsImagenet if impl == "mlmetrics-compat" else timm_data.RealLabelsImagenet
    acc = bu.run(benchmark, lambda: _feed(cls, x, bs), op="timm_real_b256" if bs == 256 else "timm_real_full",
                 role=IMPLS[impl], impl=impl, device="cpu", shape=SHAPE, measure_memory=False)
    assert acc == _feed(timm_data.RealLabelsImagenet if impl == "mlmetrics-compat" else RealLabelsImagenet, x, bs)
