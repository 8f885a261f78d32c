"""Streaming one model's logits into :class:`mlmetrics.metrics.ClassificationMetrics`
(overall and per subgroup) and keeping compact per-sample :class:`Records`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..data.labels import LabelSets
from ..ops import topk_stats

#: metric groups computed per subgroup (the report's subgroup table)
SUBGROUP_METRICS = ("accuracy", "multilabel")
DEFAULT_TOPK = (1, 5)
_COUNT_GROUPS = ((0, 0, "0 labels (not scored multi-label)"), (1, 1, "1 label"), (2, 2, "2 labels"),
                 (3, 3, "3 labels"), (4, 1 << 30, "4+ labels"))


@dataclass
class Records:
    """Compact per-sample results (what the report's per-image table and plots need; never the logits).

    index [M] dataset index of each scored row; topk_probs / topk_indices [M, k];
    hits [M, k] (label-set hits, [M, 0] without sets); target_rank [M] ([0] without targets).
    """

    index: torch.Tensor
    topk_probs: torch.Tensor
    topk_indices: torch.Tensor
    hits: torch.Tensor
    target_rank: torch.Tensor
    nonfinite: torch.Tensor | None = None  # bool [M]: softmax undefined (excluded from metrics)

    @staticmethod
    def concat(parts: Sequence["Records"]) -> "Records":
        """One :class:`Records` of several (e.g. one per rank), sorted by ``index``, each
        sample once."""
        cols = [torch.cat([getattr(p, f) for p in parts]) for f in Records.__dataclass_fields__]
        idx = cols[0]
        order = torch.argsort(idx, stable=True)
        keep = torch.ones(idx.numel(), dtype=torch.bool)
        s = idx[order]
        keep[1:] = s[1:] != s[:-1]
        sel = order[keep]
        return Records(*[c[sel] if c.shape[0] == idx.shape[0] else c for c in cols])


def check_topk(topk: Sequence[int] | None, scored: int) -> tuple[int, ...]:
    """The k values scored: ``None`` -> :data:`DEFAULT_TOPK` capped at ``scored``; explicit ks must fit."""
    if topk is None:
        return tuple(k for k in DEFAULT_TOPK if k <= scored)
    ks = tuple(int(k) for k in topk)
    bad = [k for k in ks if not 1 <= k <= scored]
    if bad:
        raise ValueError(f"--topk {bad[0]}: outside [1, {scored}] (the number of scored classes)")
    return ks


def sample_groups(num_samples: int, *, targets: torch.Tensor | None, label_sets: LabelSets | None,
                  groups: Sequence[str] | None = None) -> list[tuple[str, torch.Tensor]]:
    """The report's subgroups as (name, bool mask [N]): by number of labels in the sample's
    set, by the annotation's ``group`` column, by whether the target is in the label set."""
    out = []
    if label_sets is not None:
        sizes = label_sets.sizes()
        for lo, hi, name in _COUNT_GROUPS:
            m = (sizes >= lo) & (sizes <= hi)
            if bool(m.any()):
                out.append((name, m))
    if groups is not None:
        g = list(groups)
        for name in sorted(set(g)):
            out.append((f"group={name}", torch.tensor([v == name for v in g], dtype=torch.bool)))
    if targets is not None and label_sets is not None:
        sets = label_sets.tolist()
        inside = torch.tensor([int(t) in set(s) for t, s in zip(targets.tolist(), sets)], dtype=torch.bool)
        nonempty = label_sets.sizes() > 0
        out += [("target in label set", inside & nonempty), ("target not in label set", ~inside & nonempty)]
    return [(n, m) for n, m in out if m.numel() == num_samples and bool(m.any())]


class Scorer:
    """Feeds logits batches to ``ClassificationMetrics`` (and one per subgroup) and keeps
    :class:`Records`.

    ``targets`` / ``label_sets``: for the whole dataset (indexed by ``update``'s ``index``).
    ``groups``: (name, bool mask [N]) subgroups (see :func:`sample_groups`).
    ``topk``: None is :data:`DEFAULT_TOPK` capped at the scored classes; an explicit k larger
    than the scored classes is a ValueError.
    With ``keep_logits`` the logits are also gathered on the CPU (for ``--save-logits``).
    """

    def __init__(self, num_classes: int, *, targets: torch.Tensor | None = None,
                 label_sets: LabelSets | None = None, topk: Sequence[int] | None = None, ece_bins: int = 15,
                 device: torch.device | str = "cpu", keep_k: int = 5, keep_logits: bool = False,
                 num_samples: int | None = None, class_subset: torch.Tensor | None = None,
                 groups: Sequence[tuple[str, torch.Tensor]] = (), metrics_kwargs: dict | None = None):
        from ..metrics import ClassificationMetrics

        self.device = torch.device(device)
        self.num_classes = int(num_classes)  # logits width
        self.class_subset = None if class_subset is None else torch.as_tensor(class_subset, dtype=torch.int64)
        scored = self.num_classes if self.class_subset is None else self.class_subset.numel()
        self.topk = check_topk(topk, scored)
        self.keep_k = min(int(keep_k), scored)
        self._subset_dev = None if self.class_subset is None else self.class_subset.to(self.device)
        self.targets = None if targets is None else targets.to(self.device)
        self.label_sets = label_sets
        self._ls_dev = None if label_sets is None else label_sets.to(self.device)
        kw = {"nonfinite": "ignore", **(metrics_kwargs or {})}
        bootstrap = kw.pop("bootstrap", None)  # replicates of mlmetrics.stats.Bootstrap intervals (or None)
        if label_sets is None and num_samples is not None:
            kw.setdefault("num_samples", int(num_samples))
        self._pass_index = label_sets is not None or "num_samples" in kw
        if self.class_subset is not None:
            kw["class_subset"] = self.class_subset

        def make(**extra):
            return ClassificationMetrics(self.num_classes, topk=self.topk, label_sets=label_sets,
                                         ece_bins=ece_bins, **{**kw, **extra})

        self.metrics = make()
        if bootstrap:
            from ..stats import Bootstrap

            self.metrics = Bootstrap(self.metrics, replicates=int(bootstrap))
        from .distributed import world

        # subgroup rows are ratios of counts (exact in any summation order): per-sample dedupe
        # is only needed where a sample can arrive twice (a sharded run's padding)
        sub_kw = {"include": SUBGROUP_METRICS, "nonfinite": "ignore", "dedupe": world()[1] > 1}
        if not self._pass_index and num_samples is not None and world()[1] > 1:
            sub_kw["num_samples"] = int(num_samples)
        self.groups = [(name, mask.to(self.device), make(**sub_kw)) for name, mask in groups]
        if bootstrap:
            self.groups = [(name, mask, Bootstrap(m, replicates=int(bootstrap))) for name, mask, m in self.groups]
        self._group_rows = [0] * len(self.groups)
        self.keep_logits = keep_logits
        self._logits: list[torch.Tensor] = []
        self._rec: list[tuple] = []
        self.num_scored = 0
        self.reused_metric_read = False
        self._computed: dict | None = None

    def update(self, logits: torch.Tensor, index: torch.Tensor) -> None:
        """``logits`` [B, C] (any float dtype) of the dataset samples ``index`` int64 [B]."""
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"model output has shape {tuple(logits.shape)}, expected [N, {self.num_classes}]")
        index = index.to(logits.device, non_blocking=True)
        target = None if self.targets is None else self.targets[index]
        st = self.metrics.update(logits, target=target, sample_index=index if self._pass_index else None)
        for j, (_, mask, m) in enumerate(self.groups):
            sel = mask[index]
            if bool(sel.any()):
                self._group_rows[j] += int(sel.sum())
                m.update(logits[sel], target=None if target is None else target[sel],
                         sample_index=index[sel] if m.label_sets is not None or m.dedupe else None)
        cfg = getattr(self.metrics, "cfg", None)
        reuse = (st is not None and getattr(cfg, "with_softmax", False) and st.topk_indices.shape[1] >= self.keep_k
                 and (self._ls_dev is None or st.hits.shape[1] >= self.keep_k))
        if not reuse:  # the metrics' one read does not hold the top-5 probabilities: read again
            sets = None if self._ls_dev is None else self._ls_dev[index]
            st = topk_stats(logits, self.keep_k, target=target, label_sets=sets, class_subset=self._subset_dev)
        k = self.keep_k
        self._rec.append((index, st.topk_probs[:, :k], st.topk_indices[:, :k], st.hits[:, :k],
                          st.target_rank, st.nonfinite))
        self.reused_metric_read = reuse
        if self.keep_logits:
            self._logits.append(logits.detach().cpu())
        self.num_scored += logits.shape[0]
        self._computed = None

    def compute(self) -> dict[str, Any]:
        """The metrics (a collective under torch.distributed: every rank calls it)."""
        from .distributed import gather

        if self._computed is None:
            if sum(gather(self.num_scored)) == 0:  # every file was undecodable: nothing to score
                self._computed = {"num_samples": 0}
            else:
                self._computed = self.metrics.compute()
        return self._computed

    def subgroup_rows(self) -> list[dict]:
        """The report's subgroup table, one row per group with scored samples ("all" first),
        each value from that group's metrics."""
        rows = [_row("all", self.compute(), self.topk)]
        if rows[0]["n"] == 0:
            return []
        from .distributed import gather

        seen = [sum(c) for c in zip(*gather(self._group_rows))]
        for (name, _, m), n in zip(self.groups, seen):  # every rank computes every group (a collective each)
            if n:
                rows.append(_row(name, m.compute(), self.topk))
        return [r for r in rows if r["n"] > 0]

    def records(self) -> Records:
        if not self._rec:
            z = torch.zeros
            return Records(z(0, dtype=torch.int64), z(0, self.keep_k), z(0, self.keep_k, dtype=torch.int64),
                           z(0, self.keep_k if self.label_sets is not None else 0, dtype=torch.bool),
                           z(0, dtype=torch.int64), z(0, dtype=torch.bool))
        cols = [torch.cat(c).cpu() for c in zip(*self._rec)]
        return Records(*cols)

    def logits(self) -> torch.Tensor | None:
        if not self.keep_logits:
            return None
        return torch.cat(self._logits) if self._logits else torch.zeros(0, self.num_classes)


def score_logits(logits, *, targets=None, label_sets=None, topk=None, ece_bins=15, chunk=4096, device="cpu",
                 class_subset=None, metrics_kwargs=None):
    """Score logits [M, C] in memory (row i is sample i of ``targets`` / ``label_sets``).
    Returns ``(metrics, records)``."""
    scorer = Scorer(logits.shape[1], targets=targets, label_sets=label_sets, topk=topk, ece_bins=ece_bins,
                    device=device, num_samples=logits.shape[0], class_subset=class_subset,
                    metrics_kwargs=metrics_kwargs)
    for s in range(0, logits.shape[0], chunk):
        scorer.update(logits[s:s + chunk].to(device), torch.arange(s, min(s + chunk, logits.shape[0])))
    return scorer.compute(), scorer.records()


def _row(name: str, m: dict, topk: Sequence[int]) -> dict:
    """A subgroup row from a metrics dict: n, top-k, labelled count, ReaL top-k."""
    row: dict[str, Any] = {"group": name, "n": m.get("num_samples", 0) - m.get("nonfinite_rows", 0)}
    if "num_targets" in m:
        row.update({f"top{k}": m.get(f"top{k}") for k in topk})
    if "num_labeled" in m:
        row["n_labelled"] = m["num_labeled"]
        row.update({f"real_top{k}": m.get(f"real_top{k}") for k in topk})
    if m.get("intervals"):  # [low, high] per metric of the row (mlmetrics.stats.Bootstrap)
        row["intervals"] = {k: [m["intervals"][k]["low"], m["intervals"][k]["high"]] for k in row if k in m["intervals"]}
    return row
