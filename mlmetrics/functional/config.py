"""Metric configuration: the validators of the metric arguments (``topk``, ``include``,
``backend``, optional ints; scalar checks from :mod:`mlmetrics.ops.checks`) and :class:`Config`,
the resolved configuration one ``ClassificationMetrics`` / ``classification_metrics`` scores with.

Each validator raises a one-line ``TypeError`` (wrong type) or ``ValueError`` (wrong value)
naming the argument. Integers are Python or NumPy integers; ``bool``, floats and strings are
refused (``topk=1.7`` or ``True`` is an error, never 1).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..ops.checks import check_bool, check_choice, check_int, check_num_classes  # noqa: F401 (re-exported)
from ..ops.dispatch import BACKENDS

#: metric groups a ``ClassificationMetrics`` can be asked for (``include=``)
GROUPS = ("accuracy", "nll", "calibration", "ood", "multilabel")
#: groups that need the softmax (``with_softmax=True`` in the one ``topk_stats`` call)
SOFTMAX_GROUPS = ("nll", "calibration", "ood")
#: default cap on the extra top-k columns fetched for variable top-k (k = |Y_i|)
DEFAULT_MAX_LABEL_K = 16
NONFINITE_POLICIES = ("error", "ignore")


def check_optional_int(value, name: str, minimum: int = 1) -> int | None:
    """None, or an int ``>= minimum`` (:func:`mlmetrics.ops.checks.check_int`)."""
    return None if value is None else check_int(value, name, minimum)


def check_backend(backend) -> str:
    return check_choice(backend, "backend", BACKENDS)


def check_topk(topk, num_classes: int | None = None, name: str = "topk") -> tuple[int, ...]:
    """An int or a non-empty sequence of distinct ints in ``[1, num_classes]`` -> a tuple."""
    if isinstance(topk, (str, bytes)) or not (hasattr(topk, "__index__") or hasattr(topk, "__iter__")):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {type(topk).__name__} {topk!r}")
    ks = (topk,) if hasattr(topk, "__index__") and not hasattr(topk, "__iter__") else tuple(topk)
    ks = tuple(check_int(k, f"every k in {name}", 1) for k in ks)
    if not ks:
        raise ValueError(f"{name} must hold at least one k")
    if len(set(ks)) != len(ks):
        raise ValueError(f"{name} has duplicates: {ks}")
    if num_classes is not None:
        for k in ks:
            if k > num_classes:
                raise ValueError(f"every k in {name} must be in [1, num_classes={num_classes}], got {k}")
    return ks


def check_include(include) -> frozenset:
    if include is None:
        return frozenset(GROUPS)
    if isinstance(include, str):
        raise TypeError(f"include must be a sequence of group names (e.g. ({include!r},)), got the string "
                        f"{include!r}; choose from {GROUPS}")
    include = frozenset(include)
    unknown = sorted(str(g) for g in include - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown metric groups {unknown}; choose from {GROUPS}")
    if not include:
        raise ValueError(f"include must name at least one group of {GROUPS}")
    return include


@dataclass(frozen=True)
class Config:
    """The resolved configuration of a classification-metrics computation."""

    num_classes: int                  # classes scored (len(class_subset) when one is given)
    topk: tuple[int, ...]
    ece_bins: int
    include: frozenset
    k: int                            # the k of the single topk_stats call
    label_k: int                      # largest |Y_i| scored by variable top-k (0 without label sets)
    hist_size: int                    # label-count histogram bins 0..hist_size-1
    with_softmax: bool
    has_labels: bool
    subgroup_cap: int | None = None   # label counts >= cap form one subgroup (key cap, "cap+")

    def as_dict(self) -> dict:
        """Plain Python values (saved in ``state_dict`` and checked by ``load_state_dict``)."""
        d = asdict(self)
        d["include"] = sorted(self.include)
        d["topk"] = list(self.topk)
        return d


def make_config(num_classes: int, topk, ece_bins: int, include, max_set_size: int | None,
                max_label_k: int = DEFAULT_MAX_LABEL_K, subgroup_cap: int | None = None) -> Config:
    num_classes = check_num_classes(num_classes)
    topk = check_topk(topk, num_classes)
    ece_bins = check_int(ece_bins, "ece_bins", 1)
    include = check_include(include)
    subgroup_cap = check_optional_int(subgroup_cap, "subgroup_cap")
    max_label_k = check_int(max_label_k, "max_label_k", 1)
    has_labels = max_set_size is not None and "multilabel" in include
    label_k = min(max_set_size, max_label_k, num_classes) if has_labels else 0
    return Config(num_classes=num_classes, topk=topk, ece_bins=ece_bins, include=include,
                  k=max(max(topk), label_k), label_k=label_k,
                  hist_size=(max_set_size + 1) if has_labels else 0,
                  with_softmax=bool(include & set(SOFTMAX_GROUPS)), has_labels=has_labels,
                  subgroup_cap=subgroup_cap)
