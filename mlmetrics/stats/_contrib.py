"""Per-row contributions to the ``ClassificationMetrics`` sum state (the adapter between the
metric layer's per-row features and :class:`~mlmetrics.stats.bootstrap.PoissonBootstrap`).

``contributions(cfg, x)`` -> ``(dense [N, S] float64, layout {name: column slice},
scattered [(name, flat index [N], value [N])])`` such that, for every state entry,
``state[name] = dense[:, layout[name]].sum(0)`` plus the scatter-adds of ``scattered``: exactly
what :func:`mlmetrics.metrics._core.accumulate` adds for the rows ``x`` (tested against it).
"""
from __future__ import annotations

import torch

from ..metrics import _core


def contributions(cfg: _core.Config, x: torch.Tensor):
    c = {name: x[:, i] for i, name in enumerate(cfg.feature_names)}
    ok = 1.0 - c["nonfinite"]
    cols: list[torch.Tensor] = []
    layout: dict[str, slice] = {}
    scattered: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    def put(name: str, *vs: torch.Tensor) -> None:
        layout[name] = slice(len(cols), len(cols) + len(vs))
        cols.extend(vs)

    put("rows", c["row"])
    put("nonfinite", c["nonfinite"])
    put("bad_target", c["has_target"] * c["bad_target"])
    put("scored", ok)
    put("sum_max_logit", ok * c["max_logit"])
    put("sum_max_prob", ok * c["max_prob"])
    put("sum_lse", ok * c["lse"])
    put("sum_entropy", ok * c["entropy"])
    t = ok * c["has_target"] * (1.0 - c["bad_target"])
    rank = c["rank"]
    put("n_target", t)
    put("correct", *[t * (rank < k) for k in cfg.topk])
    top1 = t * (rank == 0)
    put("sum_nll", t * c["nll"])
    put("sum_brier", t * c["brier"])
    cls = c["target"].to(torch.int64).clamp(0, cfg.num_classes - 1)
    scattered += [("class_count", cls, t), ("class_correct", cls, top1)]
    b = _core.bin_index(cfg, c["max_prob"])
    scattered += [("bin_count", b, t), ("bin_conf", b, t * c["max_prob"].to(torch.float32).to(torch.float64)),
                  ("bin_correct", b, top1)]
    if cfg.has_labels:
        lr, s = c["label_row"], c["set_size"]
        put("label_rows", lr)
        scattered.append(("label_hist", s.to(torch.int64).clamp(0, cfg.hist_size - 1), lr))
        l_ok = ok * lr
        ne = l_ok * (s > 0)
        put("n_labeled", ne)
        put("n_empty", l_ok * (s == 0))
        s1 = s.clamp(min=1)
        h = [c[f"h@{k}"] for k in cfg.topk]
        put("real", *[ne * (h_ > 0) for h_ in h])
        put("prec", *[ne * h_ / k for h_, k in zip(h, cfg.topk)])
        put("rec", *[ne * h_ / s1 for h_ in h])
        put("subset", *[ne * ((s == k) & (h_ == k)) for h_, k in zip(h, cfg.topk)])
        put("hamming", *[ne * (k + s - 2.0 * h_) for h_, k in zip(h, cfg.topk)])
        hv = c["h_var"]
        v = ne * (hv >= 0)
        strict = v * (hv == s)
        frac = v * hv.clamp(min=0) / s1
        put("n_var", v)
        put("n_trunc", ne * (hv < 0))
        put("var_strict", strict)
        put("var_frac", frac)
        g = s.to(torch.int64).clamp(0, cfg.label_k)
        scattered += [("grp_count", g, v), ("grp_strict", g, strict), ("grp_frac", g, frac)]
    dense = torch.stack([v.to(torch.float64) for v in cols], dim=1)
    return dense, layout, scattered
