"""Which class prior a model's probabilities assume: its training faces' or a uniform one.

A network trained on FER-2013 learns that 30 % of faces are happy and 1.8 % disgusted,
and its (calibrated) probabilities carry that prior. On faces whose emotions are about
equally frequent (posed sets such as CK+, JAFFE, CREMA-D) the prior is wrong, and the
model leans to its training set's frequent emotions. *Logit adjustment* (Menon et al.,
"Long-tail learning via logit adjustment", ICLR 2021) removes it: the probabilities
``softmax(z / T - log prior)`` are the posterior under a uniform prior when ``softmax(z / T)``
is calibrated for the training distribution. Nothing is fitted: ``prior`` is the training
labels' frequencies (soft targets: their mean), recorded in the model file as
``metadata.inference.class_prior``; ``metadata.inference.prior`` says which the file uses
by default (``train``: the network's own; ``uniform``: adjusted). A chain's heads model
records one prior per head (``metadata.inference.head_class_priors``: head name ->
frequencies); under ``uniform`` each head divides out its own before the heads are
combined (pathnet/heads_model.py).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PRIORS = ("train", "uniform")
PRIOR_HELP = (
    "train: emotions as frequent as in the model's training faces (the network's own "
    "probabilities); uniform: every emotion equally likely (the training frequencies the "
    "file records are divided out: logit adjustment, docs/predict.md)"
)


HEAD_PRIORS = "head_class_priors"
"""``metadata.inference[HEAD_PRIORS]``: a heads model's training frequencies, per head."""


class PriorError(ValueError):
    """A class prior that cannot be used: unknown name, absent, or not a distribution."""


def class_frequencies(
    labels: np.ndarray, n_classes: int, targets: np.ndarray | None = None
) -> list[float] | None:
    """Training frequencies of each class (soft ``targets``: their mean), or None when a
    class has no training face at all (a uniform prior would then always pick it)."""
    if targets is not None:
        freq = np.asarray(targets, dtype=np.float64).mean(axis=0)
    else:
        freq = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes) / max(
            len(labels), 1
        )
    if len(freq) != n_classes or not np.all(freq > 0):
        return None
    return [float(f) for f in freq / freq.sum()]


def read_prior(
    metadata: Mapping[str, Any], where: str | os.PathLike, n_classes: int, key: str = "inference"
) -> tuple[str, tuple[float, ...] | None]:
    """``(prior, class_prior)`` of a file's ``metadata[key]``: ``prior`` defaults to
    ``train``, ``class_prior`` to None; ``PriorError`` naming ``where`` when either is
    unusable (``uniform`` without a recorded prior included)."""
    inference = metadata.get(key)
    if not isinstance(inference, Mapping):
        return "train", None
    prior = inference.get("prior", "train")
    if prior not in PRIORS:
        raise PriorError(
            f"{where}: inference setting prior {str(prior)[:40]!r} is not one of {PRIORS} "
            f"(metadata.{key}.prior)"
        )
    values = inference.get("class_prior")
    if values is None:
        if prior == "uniform" and inference.get(HEAD_PRIORS) is None:
            raise PriorError(f"{where}: prior 'uniform' but no class_prior (metadata.{key})")
        return prior, None
    return prior, check_distribution(values, n_classes, where)


def read_head_priors(
    metadata: Mapping[str, Any],
    where: str | os.PathLike,
    head_classes: Mapping[str, int],
    key: str = "inference",
) -> dict[str, tuple[float, ...]] | None:
    """A heads model's per-head training frequencies (``metadata[key][HEAD_PRIORS]``;
    ``head_classes``: each head's name and class count), None when not recorded;
    ``PriorError`` naming ``where`` unless every head has one usable distribution."""
    inference = metadata.get(key)
    values = inference.get(HEAD_PRIORS) if isinstance(inference, Mapping) else None
    if values is None:
        return None
    if not isinstance(values, Mapping) or set(values) != set(head_classes):
        got = sorted(values) if isinstance(values, Mapping) else type(values).__name__
        raise PriorError(
            f"{where}: metadata.{key}.{HEAD_PRIORS} must give every head one prior "
            f"({', '.join(head_classes)}), got {str(got)[:80]}"
        )
    return {
        name: check_distribution(values[name], n, f"{where} head {name}")
        for name, n in head_classes.items()
    }


def check_distribution(values: Any, n_classes: int, where: str | os.PathLike) -> tuple[float, ...]:
    """``values`` as a tuple of ``n_classes`` positive frequencies summing to 1."""
    ok = isinstance(values, Sequence) and not isinstance(values, str) and len(values) == n_classes
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ok = ok and all(math.isfinite(v) and v > 0 for v in values)
    if not ok or abs(sum(values) - 1.0) > 1e-6:
        raise PriorError(
            f"{where}: class_prior must be {n_classes} positive frequencies summing to 1 "
            f"(one per class), got {str(values)[:80]}"
        )
    return tuple(float(v) for v in values)


def require_prior(name: str, recorded: bool, where: str) -> str:
    """``name`` checked for a model that has (``recorded``) or lacks its training prior."""
    if name not in PRIORS:
        raise PriorError(f"unknown prior {name!r}: use one of {', '.join(PRIORS)}")
    if name == "uniform" and not recorded:
        raise PriorError(
            f"{where} records no class_prior (its training faces' class frequencies), so it "
            "cannot assume a uniform prior: use --prior train, or a model file written by "
            "this version (studies record it on every model file they write, a chain's "
            "heads model one per head: metadata.inference.head_class_priors)"
        )
    return name
