"""Confidence intervals and model comparison.

* :class:`Bootstrap` — intervals for every scalar metric of a ``ClassificationMetrics``
  (streaming Poisson bootstrap: weights from a hash of (sample index, replicate, seed), so the
  answer is the same for any batching, batch order or number of processes).
* :func:`compare` — paired differences of two or more models scored on the same samples (same
  bootstrap weights), McNemar's exact test for per-sample hit metrics, a verdict table; its inputs
  (:class:`Scores`) come from :func:`scores.from_bootstrap`, saved logits or saved reports
  (:func:`scores.load`); ``mlmetrics compare`` is :mod:`.cli`.
* :func:`standardize` — dataset B's accuracy reweighted to dataset A's subgroup mix, and the drop
  split into the part the mix explains and the rest.
"""
from . import scores
from .bootstrap import DEFAULT_REPLICATES, PoissonBootstrap
from .compare import Comparison, Scores, compare
from .intervals import interval
from .mcnemar import mcnemar_exact
from .metrics import Bootstrap, scalar_metrics
from .standardize import standardize
from .weights import poisson_weights

__all__ = ["Bootstrap", "Comparison", "DEFAULT_REPLICATES", "PoissonBootstrap", "Scores", "compare", "interval",
           "mcnemar_exact", "poisson_weights", "scalar_metrics", "standardize"]
