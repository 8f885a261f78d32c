"""The op contract is written once per language: mlmetrics/ops/schema.py (Python, Triton) and
csrc/include/schema.h (C++, CUDA). These tests keep the two equal."""
import re
from pathlib import Path

import pytest
import torch

import mlmetrics
from mlmetrics.ops.schema import NUM_STATS, SCHEMAS, Stat

HEADER = Path(__file__).resolve().parents[2] / "csrc" / "include" / "schema.h"


def _plain(name: str) -> str:  # kStatLogSumExp (C++ style) and LOGSUMEXP (Python style) name one column
    return name.replace("_", "").lower()


def test_header_stat_columns_equal_python():
    text = HEADER.read_text()
    cols = {_plain(m.group(1)): int(m.group(2)) for m in re.finditer(r"kStat(\w+)\s*=\s*(\d+)", text)}
    assert cols == {_plain(s.name): int(s) for s in Stat}
    assert int(re.search(r"kNumStats\s*=\s*(\d+)", text).group(1)) == NUM_STATS


@pytest.mark.skipif(not mlmetrics.HAS_EXTENSION, reason="needs the compiled extension")
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_registered_schema_equals_python(name):
    registered = str(getattr(torch.ops.mlmetrics, name).default._schema)
    assert registered == "mlmetrics::" + SCHEMAS[name]


@pytest.mark.parametrize("backend", [b for b in mlmetrics.available_backends("cpu")])
def test_every_backend_writes_every_column(backend):
    x = torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.0, 0.0]])
    s = mlmetrics.topk_stats(x, 2, target=torch.tensor([0, 2]), backend=backend)
    assert s.row_stats.shape == (2, NUM_STATS)
    assert not torch.isnan(s.row_stats).any()
    torch.testing.assert_close(s.log_normalizer, s.logsumexp - s.max_logit)
    torch.testing.assert_close(s.topk_probs.sum(1)[1:], torch.tensor([2 / 3]))
