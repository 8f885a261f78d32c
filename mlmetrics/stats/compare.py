"""Paired comparison of models scored on the same samples: the difference of every metric with
its bootstrap interval (the same Poisson weights for every model, so the pairing comes from the
shared sample index), McNemar's exact test for per-sample hit metrics, and a verdict table."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .intervals import METHODS, check_level, interval
from .mcnemar import discordant, mcnemar_exact

#: metrics where lower is better (every other accuracy-like metric: higher is better)
LOWER_IS_BETTER = ("nll", "brier", "ece", "mce", "hamming_loss@")
#: properties of the dataset, not of the model: left out of comparisons
DATASET_KEYS = ("multilabel_proportion", "mean_label_count")
HIGHER_IS_BETTER = ("top", "real_top", "precision@", "recall@", "subset_accuracy@", "macro_accuracy",
                    "variable_topk", "subgroup_accuracy", "asma", "standardized_")


def direction(metric: str) -> int:
    """+1 higher is better, -1 lower is better, 0 neither (e.g. mean confidence)."""
    if metric.startswith(LOWER_IS_BETTER):
        return -1
    if metric.startswith(HIGHER_IS_BETTER):
        return 1
    return 0


@dataclass
class Scores:
    """One model's metrics for a comparison.

    estimates: {metric: value}; replicates: {metric: float64 [B]} from seed ``seed``;
    hits: {metric: (sample key int64 [M], hit bool [M])} for the per-sample hit metrics;
    keys: what the sample keys are (``"sample_index"`` or ``"image_name"``): models can only be
    paired when they agree.
    """
    name: str
    estimates: dict[str, float]
    replicates: dict[str, torch.Tensor]
    seed: int
    hits: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    keys: str = "sample_index"
    num_samples: int | None = None

    @property
    def num_replicates(self) -> int:
        return next(iter(self.replicates.values())).numel() if self.replicates else 0


@dataclass
class Comparison:
    """Rows: {"model", "baseline", "metric", "baseline_value", "value", "difference", "low", "high",
    "level", "method", "mcnemar_p", "only_baseline", "only_model", "verdict"}."""
    rows: list[dict]
    level: float
    method: str
    replicates: int
    seed: int

    def to_dict(self) -> dict:
        return {"level": self.level, "method": self.method, "replicates": self.replicates, "seed": self.seed,
                "rows": self.rows}

    def table(self, metrics: list[str] | None = None) -> str:
        """The verdict table as text."""
        rows = [r for r in self.rows if metrics is None or r["metric"] in metrics]
        if not rows:
            return "(no metric in common)"
        pct = f"{100 * self.level:g}%"
        head = ["metric", "baseline", "model", "difference", f"{pct} interval", "McNemar p", "verdict"]
        lines = []
        for r in rows:
            p = r.get("mcnemar_p")
            lines.append([r["metric"], _f(r["baseline_value"]), _f(r["value"]), _f(r["difference"], True),
                          f"[{_f(r['low'], True)}, {_f(r['high'], True)}]",
                          "-" if p is None else f"{p:.3g}", r["verdict"]])
        w = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(head)]
        out = []
        for model in dict.fromkeys(r["model"] for r in rows):
            base = rows[0]["baseline"]
            out.append(f"{model} vs {base} ({self.replicates} paired bootstrap replicates, {self.method}, "
                       f"seed {self.seed})")
            out.append("  " + "  ".join(h.ljust(w[i]) for i, h in enumerate(head)))
            for r, x in zip(rows, lines):
                if r["model"] == model:
                    out.append("  " + "  ".join(v.ljust(w[i]) for i, v in enumerate(x)))
        return "\n".join(out)


def _f(v, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:+.4f}" if sign else f"{v:.4f}"


def _verdict(metric: str, lo: float, hi: float, base: str, model: str) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0.0 <= hi:
        return "no clear difference"
    d = direction(metric)
    up = lo > 0.0
    if d == 0:
        return f"{model} higher" if up else f"{base} higher"
    return f"{model} better" if (up == (d > 0)) else f"{base} better"


def _paired_hits(a: tuple, b: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The hits of the samples both models scored, in the same order."""
    (ka, ha), (kb, hb) = a, b
    if ka.numel() == 0 or kb.numel() == 0:
        return ha[:0], hb[:0]
    sb, pb = torch.sort(kb)
    pos = torch.searchsorted(sb, ka).clamp(max=sb.numel() - 1)
    found = sb[pos] == ka
    return ha[found], hb[pb[pos[found]]]


def compare(*models: Scores, level: float = 0.95, method: str = "percentile",
            metrics: list[str] | None = None) -> Comparison:
    """Compare ``models[1:]`` with the baseline ``models[0]`` on every metric they share.

    Each model's replicates must come from the same seed and number of replicates (and the same
    kind of sample keys), so replicate b reweights the same samples for every model; the interval
    of a difference is then the interval of ``replicates_model - replicates_baseline``.
    """
    if len(models) < 2:
        raise ValueError("compare needs at least two models (the first is the baseline)")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    level = check_level(level)
    base = models[0]
    for m in models[1:]:
        if (m.seed, m.num_replicates, m.keys) != (base.seed, base.num_replicates, base.keys):
            raise ValueError(f"{m.name} and {base.name} were not bootstrapped alike (seed {m.seed} vs {base.seed}, "
                             f"{m.num_replicates} vs {base.num_replicates} replicates, sample keys {m.keys} vs "
                             f"{base.keys}): the replicates would not be paired")
    rows = []
    for m in models[1:]:
        names = [k for k in base.estimates if k in m.estimates and k in base.replicates and k in m.replicates
                 and k not in DATASET_KEYS]
        if metrics is not None:
            names = [k for k in metrics if k in names]
        for k in names:
            d = m.estimates[k] - base.estimates[k]
            iv = interval(d, m.replicates[k] - base.replicates[k], level, method)
            row = {"model": m.name, "baseline": base.name, "metric": k, "baseline_value": base.estimates[k],
                   "value": m.estimates[k], "difference": d, "low": iv["low"], "high": iv["high"], "se": iv["se"],
                   "level": level, "method": method, "mcnemar_p": None, "only_baseline": None, "only_model": None}
            if k in base.hits and k in m.hits:
                ha, hb = _paired_hits(base.hits[k], m.hits[k])
                only_a, only_b = discordant(ha, hb)
                row.update(mcnemar_p=mcnemar_exact(only_a, only_b), only_baseline=only_a, only_model=only_b,
                           paired_samples=int(ha.numel()))
            row["verdict"] = _verdict(k, iv["low"], iv["high"], base.name, m.name)
            rows.append(row)
    return Comparison(rows, level, method, base.num_replicates, base.seed)
