"""The contract of the ``mlmetrics`` ops, in one place: schemas, ``row_stats`` columns, results.

Every backend (C++ CPU ``csrc/cpu/``, CUDA ``csrc/cuda/``, Triton ``ops/triton/``), the oracle
(``ops/reference.py``) and the metrics import the column numbers from here; the C++ twin is
``csrc/include/schema.h`` (same names, ``kStat...``), kept equal by ``tests/ops/test_schema.py``.
"""
from __future__ import annotations

import enum
from typing import NamedTuple

import torch

#: The op schemas, exactly as ``TORCH_LIBRARY(mlmetrics, m)`` in ``csrc/ops.cpp`` defines them.
SCHEMAS = {
    "topk_stats": (
        "topk_stats(Tensor logits, int k, Tensor? target, Tensor? label_ranges, Tensor? labels, "
        "Tensor? class_subset, bool with_softmax) "
        "-> (Tensor topk_logits, Tensor topk_indices, Tensor hits, Tensor row_stats, Tensor target_rank)"),
    # CUDA kernel v2 (csrc/cuda/topk_v2.cuh), same contract as topk_stats; backend="cuda_v2"
    "topk_stats_v2": (
        "topk_stats_v2(Tensor logits, int k, Tensor? target, Tensor? label_ranges, Tensor? labels, "
        "Tensor? class_subset, bool with_softmax) "
        "-> (Tensor topk_logits, Tensor topk_indices, Tensor hits, Tensor row_stats, Tensor target_rank)"),
    "softmax_topk": "softmax_topk(Tensor logits, int k) -> (Tensor probs, Tensor indices)",
    "topk_label_hits": "topk_label_hits(Tensor logits, Tensor label_ranges, Tensor labels, int k) -> Tensor",
    # the bootstrap's Poisson(1) weights from a hash of (sample index, replicate, seed): mlmetrics.stats
    "poisson_weights": "poisson_weights(Tensor sample_index, int replicates, int seed) -> Tensor",
    "poisson_accumulate": ("poisson_accumulate(Tensor(a!) sums, Tensor sample_index, Tensor rows, Tensor values, "
                           "int seed) -> ()"),
}


class Stat(enum.IntEnum):
    """Columns of ``row_stats`` f32 [N, NUM_STATS].

    MAX_LOGIT       the first class in rank order's logit (NaN when the row holds NaN)
    LOGSUMEXP       log sum_j exp(x_j) (rounded to fp32: use LOG_NORMALIZER for probabilities)
    ENTROPY         -sum_j p_j log p_j, nats
    SUM_P2          sum_j p_j^2
    TARGET_LOGIT    x[target] (NaN without a target or outside [0, C))
    NONFINITE       1.0 when the row's softmax is undefined (NaN or +inf present, or all -inf)
    LOG_NORMALIZER  log sum_j exp(x_j - MAX_LOGIT), in [0, log C]: p_j = exp((x_j - MAX_LOGIT) - LOG_NORMALIZER)
                    keeps the relative error of every probability ~1e-7 at any logit magnitude
    """

    MAX_LOGIT = 0
    LOGSUMEXP = 1
    ENTROPY = 2
    SUM_P2 = 3
    TARGET_LOGIT = 4
    NONFINITE = 5
    LOG_NORMALIZER = 6


NUM_STATS = len(Stat)

#: logits dtypes the kernels read (float64 is cast to float32 at the entry point)
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: the op's k above which the fused GPU kernels hand the selection to a candidate pass
MAX_FUSED_K = 128


class TopKStats(NamedTuple):
    """Everything one read of a logits row gives (the result of ``mlmetrics.topk_stats``).

    topk_logits  f32  [N, k]          the k largest logits in rank order
    topk_indices i64  [N, k]          their class indices (ties: lower index first)
    hits         bool [N, k]          topk_indices[i, j] in sample i's label set ([N, 0] without sets)
    row_stats    f32  [N, NUM_STATS]  columns :class:`Stat`
    target_rank  i64  [N]             0-based rank of the target class (0 = top-1 correct);
                                      -1 for a target outside [0, C); [0] without target
    """

    topk_logits: torch.Tensor
    topk_indices: torch.Tensor
    hits: torch.Tensor
    row_stats: torch.Tensor
    target_rank: torch.Tensor

    def stat(self, column: Stat) -> torch.Tensor:
        """f32 [N]: one column of ``row_stats``."""
        return self.row_stats[:, int(column)]

    @property
    def max_logit(self) -> torch.Tensor:
        return self.stat(Stat.MAX_LOGIT)

    @property
    def logsumexp(self) -> torch.Tensor:
        return self.stat(Stat.LOGSUMEXP)

    @property
    def log_normalizer(self) -> torch.Tensor:
        return self.stat(Stat.LOG_NORMALIZER)

    @property
    def entropy(self) -> torch.Tensor:
        return self.stat(Stat.ENTROPY)

    @property
    def sum_p2(self) -> torch.Tensor:
        return self.stat(Stat.SUM_P2)

    @property
    def target_logit(self) -> torch.Tensor:
        return self.stat(Stat.TARGET_LOGIT)

    @property
    def nonfinite(self) -> torch.Tensor:
        """bool [N]: the row's softmax is undefined (NaN or +inf present, or all -inf)."""
        return self.stat(Stat.NONFINITE) != 0

    @property
    def topk_probs(self) -> torch.Tensor:
        """f32 [N, k]: softmax probabilities of the top-k classes (needs with_softmax); computed in
        float64 from (x - max_logit) - log_normalizer, so exact to a few fp32 ulps at any magnitude."""
        st = self.row_stats.double()
        return torch.exp(self.topk_logits.double() - st[:, int(Stat.MAX_LOGIT), None]
                         - st[:, int(Stat.LOG_NORMALIZER), None]).float()

    @property
    def max_prob(self) -> torch.Tensor:
        """f32 [N]: the largest softmax probability (needs with_softmax)."""
        return torch.exp(-self.log_normalizer.double()).float()

    @property
    def nll(self) -> torch.Tensor:
        """f32 [N]: -log softmax(logits)[target] (needs a target and with_softmax)."""
        return ((self.max_logit.double() - self.target_logit.double()) + self.log_normalizer.double()).float()
