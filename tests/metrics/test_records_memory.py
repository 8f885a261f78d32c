"""Dedupe records: bytes per sample, and the extra memory of compute() / state_dict() / sync()
relative to the records (measured with the profiler's allocation events; sync(): in
test_metrics_distributed.py)."""
import pytest
import torch

from mlmetrics import LabelSets
from mlmetrics.metrics import ClassificationMetrics
from tests.metrics.memory import peak_extra_bytes

N, C = 100_000, 1000


def _filled(label_sets=None, **kw):
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=label_sets, num_samples=None if label_sets else N, **kw)
    g = torch.Generator().manual_seed(0)
    for b in range(0, 4096, 2048):
        x = torch.randn(2048, C, generator=g)
        t = torch.randint(0, C, (2048,), generator=g)
        m.update(x, t, sample_index=(torch.arange(b, b + 2048) * 37) % N)
    return m


@pytest.fixture(autouse=True)
def one_thread():
    # the records are decoded in many small steps: one thread keeps them fast on a busy machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def real_like_sets():
    # ReaL-like: 1-3 labels per sample, some empty, largest set 9
    lists = [[(i * 13 + j * 101) % C for j in range((i % 4))] for i in range(N)]
    lists[5] = list(range(9))
    return LabelSets.from_lists(lists, C)


@pytest.mark.parametrize("labels", [False, True])
def test_records_at_most_48_bytes_per_sample_and_compute_peak(labels, real_like_sets):
    m = _filled(real_like_sets if labels else None)
    rec = m.state["records"]
    assert rec.shape == (N + 1, 9 if labels else 8)  # + one trash row for invalid sample indices
    # header, rank, target, 5 fp32 stats (+ 1 word of hits): 32 B, 36 B with label sets (<= 48)
    assert rec.shape[1] * rec.element_size() == (36 if labels else 32)
    extra, out = peak_extra_bytes(m.compute)
    records = rec.numel() * rec.element_size()
    assert (records + extra) / records <= 1.5, f"compute() peak {(records + extra) / records:.2f}x the records"
    assert out["num_samples"] == 4096
    extra_sd, sd = peak_extra_bytes(m.state_dict)
    assert extra_sd < 0.01 * records and sd["state.records"].data_ptr() == rec.data_ptr()
