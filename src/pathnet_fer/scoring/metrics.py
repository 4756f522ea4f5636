"""Held-out metrics: accuracy, macro-F1, unweighted average recall (UAR), confusion matrices.

Frame level treats every face crop as a sample (the paper's set-up). Clip level first votes
over a clip's frames, which is what a user of a video classifier sees; the vote is either
the majority of frame predictions (ties broken by mean probability) or the arg-max of the
mean probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score, recall_score

VOTES: tuple[str, ...] = ("majority", "mean_proba")


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> dict[str, float]:
    """``accuracy``, ``macro_f1`` and ``uar`` of integer predictions.

    macro-F1 averages over the classes present in the truth or the predictions (sklearn's
    default); UAR averages recall over the classes present in the truth only, since a
    class with no test sample has no recall.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    if len(y_true) == 0:
        raise ValueError("cannot score an empty test set")
    if (
        y_true.min() < 0
        or y_true.max() >= n_classes
        or y_pred.min() < 0
        or y_pred.max() >= n_classes
    ):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    present = np.unique(y_true)
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "uar": float(
            recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
    }


def collapse_metrics(y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """``top_share``: the share of the most frequent predicted class. A model that has
    collapsed onto one emotion shows it here (near 1) even when its accuracy looks
    plausible on an unbalanced test set."""
    counts = np.bincount(np.asarray(y_pred, dtype=np.int64), minlength=n_classes)
    return {"top_share": float(counts.max() / max(counts.sum(), 1))}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``(n_classes, n_classes)``: rows are true classes, columns predictions."""
    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)).astype(np.int64)


def clip_vote(
    proba: np.ndarray, labels: np.ndarray, clips: np.ndarray, method: str = "majority"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate frame probabilities ``(n, C)`` into one prediction per clip.

    Returns ``(clip_ids, clip_true, clip_pred)``. A clip whose frames disagree on the label
    is an input error (raised), never silently averaged.
    """
    if method not in VOTES:
        raise ValueError(f"clip vote must be one of {VOTES}, got {method!r}")
    proba = np.asarray(proba, dtype=np.float64)
    clips = np.asarray(clips).astype(str)
    labels = np.asarray(labels, dtype=np.int64)
    ids, inverse = np.unique(clips, return_inverse=True)
    n_clips, n_classes = len(ids), proba.shape[1]
    counts = np.bincount(inverse, minlength=n_clips).astype(np.float64)
    mean_proba = np.zeros((n_clips, n_classes))
    np.add.at(mean_proba, inverse, proba)
    mean_proba /= counts[:, None]
    if method == "mean_proba":
        pred = mean_proba.argmax(1)
    else:
        votes = np.zeros((n_clips, n_classes))
        np.add.at(votes, (inverse, proba.argmax(1)), 1.0)
        # Ties between top-voted classes go to the one with the higher mean probability.
        pred = (votes + mean_proba * 1e-6).argmax(1)
    low = np.full(n_clips, np.iinfo(np.int64).max)
    high = np.full(n_clips, -1, dtype=np.int64)
    np.minimum.at(low, inverse, labels)
    np.maximum.at(high, inverse, labels)
    true = high
    mixed = low != high
    if mixed.any():
        raise ValueError(f"clips with frames of different labels: {list(ids[mixed][:5])}")
    return ids, true, pred


@dataclass
class Evaluation:
    """Held-out scores of one model on one test set, at frame and clip level."""

    frame: dict[str, float]
    clip: dict[str, float]
    frame_confusion: np.ndarray
    clip_confusion: np.ndarray
    n_frames: int
    n_clips: int
    predictions: pd.DataFrame = field(repr=False)
    proba: np.ndarray | None = field(default=None, repr=False)  # (n_frames, C), as scored

    def by_level(self) -> dict[str, dict[str, float]]:
        return {"frame": self.frame, "clip": self.clip}


def evaluate_proba(
    proba: np.ndarray,
    labels: np.ndarray,
    clips: np.ndarray,
    n_classes: int,
    vote: str = "majority",
) -> Evaluation:
    """Score frame probabilities against labels, frame-level and clip-level."""
    proba = np.asarray(proba)
    labels = np.asarray(labels, dtype=np.int64)
    if proba.ndim != 2 or proba.shape[0] != len(labels) or proba.shape[1] != n_classes:
        raise ValueError(f"proba shape {proba.shape} does not match {len(labels)} x {n_classes}")
    frame_pred = proba.argmax(1)
    ids, clip_true, clip_pred = clip_vote(proba, labels, clips, vote)
    predictions = pd.DataFrame(
        {"clip": np.asarray(clips).astype(str), "label": labels, "pred": frame_pred}
    )
    # Calibration at a glance: mean max-probability beside accuracy (equal when calibrated).
    frame = {
        **classification_metrics(labels, frame_pred, n_classes),
        **collapse_metrics(frame_pred, n_classes),
        "confidence": float(proba.max(1).mean()),
    }
    clip = {
        **classification_metrics(clip_true, clip_pred, n_classes),
        **collapse_metrics(clip_pred, n_classes),
    }
    return Evaluation(
        frame=frame,
        clip=clip,
        frame_confusion=confusion(labels, frame_pred, n_classes),
        clip_confusion=confusion(clip_true, clip_pred, n_classes),
        n_frames=len(labels),
        n_clips=len(ids),
        predictions=predictions,
        proba=proba,
    )


def reliability_table(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """The calibration curve: predictions binned by their max-probability (equal-width
    bins over (0, 1]), with per bin ``n``, ``confidence`` (mean max-probability) and
    ``accuracy``; a calibrated model has the two equal in every bin. ``ece``: the
    expected calibration error, the n-weighted mean gap (same value on every row)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if confidence.shape != correct.shape or confidence.size == 0:
        raise ValueError("confidence and correct must be non-empty and of one shape")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        rows.append(
            {
                "low": edges[b],
                "high": edges[b + 1],
                "n": n,
                "confidence": float(confidence[sel].mean()) if n else float("nan"),
                "accuracy": float(correct[sel].mean()) if n else float("nan"),
            }
        )
    table = pd.DataFrame(rows)
    used = table[table.n > 0]
    gap = (used.confidence - used.accuracy).abs()
    table["ece"] = float((gap * used.n).sum() / used.n.sum())
    return table
