"""Per-sample dedupe records: what one sample contributes to every metric, packed in int32 words.

A record keeps the op's per-row outputs the metric groups read (not their contributions), so
decoding a record and running the groups' ``*_rows`` gives exactly what the direct path adds:

=========  ==================================================================================
word 0     header: bit 30 seen, bit 29 non-finite row, bit 28 has a target, bits 0-27 |Y_i|
word 1     target rank (int, -1 outside [0, C))
word 2     target class
words 3-7  (with softmax) float32 bits of max_logit, target_logit, log_normalizer, entropy, sum_p2
then       (with label sets) hits of the top-k classes, 31 bits per word
=========  ==================================================================================

An unseen record is INT32_MIN in every word, and a seen one holds the same words on every rank
that saw it, so records of several processes / metrics combine with an elementwise MAX (a
DistributedSampler's padding counts once). At ``topk=(1, 5)`` a record is 32 B (36 B with
ImageNet ReaL label sets, k = 9), against 144 B as float64 features.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..functional import Config
from ..ops import NUM_STATS, Stat, TopKStats

INT32_MIN = -(2 ** 31)
SEEN, NONFINITE, HAS_TARGET = 1 << 30, 1 << 29, 1 << 28
SIZE_MASK = (1 << 28) - 1
HIT_BITS = 31
#: float32 columns of a record, in word order (from ``row_stats``)
FLOAT_STATS = (Stat.MAX_LOGIT, Stat.TARGET_LOGIT, Stat.LOG_NORMALIZER, Stat.ENTROPY, Stat.SUM_P2)


@dataclass(frozen=True)
class RecordLayout:
    """Word layout of the records of one configuration."""

    k: int               # hits kept per row (the op's k); 0 without label sets
    with_softmax: bool

    @classmethod
    def of(cls, cfg: Config) -> "RecordLayout":
        return cls(k=cfg.k if cfg.has_labels else 0, with_softmax=cfg.with_softmax)

    @property
    def float_word(self) -> int:
        return 3

    @property
    def hit_word(self) -> int:
        return 3 + (len(FLOAT_STATS) if self.with_softmax else 0)

    @property
    def hit_words(self) -> int:
        return -(-self.k // HIT_BITS)

    @property
    def words(self) -> int:
        return self.hit_word + self.hit_words

    @property
    def bytes_per_sample(self) -> int:
        return 4 * self.words

    def encode(self, st: TopKStats, target: torch.Tensor | None, set_sizes: torch.Tensor | None) -> torch.Tensor:
        """int32 [N, words] records of N rows."""
        n = st.row_stats.shape[0]
        dev = st.row_stats.device
        i32 = torch.int32
        header = torch.full((n,), SEEN, dtype=i32, device=dev)
        header |= st.nonfinite.to(i32) * NONFINITE
        if target is not None:
            header |= HAS_TARGET
            rank, tgt = st.target_rank.to(i32), target.to(i32)
        else:
            rank = tgt = torch.full((n,), -1, dtype=i32, device=dev)
        if set_sizes is not None:
            header |= set_sizes.clamp(0, SIZE_MASK).to(i32)
        cols = [header[:, None], rank[:, None], tgt[:, None]]
        if self.with_softmax:
            f = torch.stack([st.row_stats[:, int(c)] for c in FLOAT_STATS], dim=1).to(torch.float32).contiguous()
            cols.append(f.view(i32))
        if self.k:
            hits = st.hits[:, :self.k].to(torch.int64)
            pad = self.hit_words * HIT_BITS - self.k
            hits = torch.nn.functional.pad(hits, (0, pad)).reshape(n, self.hit_words, HIT_BITS)
            shifts = torch.arange(HIT_BITS, dtype=torch.int64, device=dev)
            cols.append((hits << shifts).sum(2).to(i32))
        return torch.cat(cols, dim=1)

    def decode(self, rec: torch.Tensor):
        """``(stats, target, has_target, set_sizes, seen)`` of records int32 [n, words]: a
        :class:`TopKStats` holding what the records keep (no top-k logits / indices)."""
        n = rec.shape[0]
        dev = rec.device
        header = rec[:, 0]
        seen = header >= 0                      # unseen records are INT32_MIN
        nonfinite = (header & NONFINITE) != 0
        has_target = (header & HAS_TARGET) != 0
        sizes = (header & SIZE_MASK).to(torch.int64)
        row_stats = torch.full((n, NUM_STATS), float("nan"), dtype=torch.float32, device=dev)
        row_stats[:, int(Stat.NONFINITE)] = nonfinite.to(torch.float32)
        if self.with_softmax:
            f = rec[:, self.float_word:self.float_word + len(FLOAT_STATS)].contiguous().view(torch.float32)
            for j, c in enumerate(FLOAT_STATS):
                row_stats[:, int(c)] = f[:, j]
        if self.k:  # word j holds hits j*31 .. j*31+30 (int32 shifts of only the bits kept: small temporaries)
            hits = torch.cat([(rec[:, self.hit_word + j, None]
                               >> torch.arange(min(HIT_BITS, self.k - j * HIT_BITS), dtype=torch.int32, device=dev))
                              & 1 for j in range(self.hit_words)], dim=1).to(torch.bool)
        else:
            hits = torch.zeros(n, 0, dtype=torch.bool, device=dev)
        empty = torch.zeros(n, 0, device=dev)
        st = TopKStats(empty, empty.to(torch.int64), hits, row_stats, rec[:, 1].to(torch.int64))
        return st, rec[:, 2].to(torch.int64).clamp(min=0), has_target, sizes, seen
