"""Per-file summary of a prediction table: what a clip shows overall.

Two clip-level votes are given, because they disagree on hard clips and both are used in
the literature: ``emotion_mean`` (argmax of the mean probabilities over the frames with a
face) and ``emotion_majority`` (most frequent per-frame prediction; ties go to the
emotion with the higher mean probability).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pathnet_fer.predict.columns import class_names_of, probability_column


def summarise(predictions: pd.DataFrame, class_names: list[str] | None = None) -> pd.DataFrame:
    """One row per file: frame counts, mean probabilities, clip-level emotions.

    Columns: ``file``, ``frames`` (distinct frames analysed), ``frames_with_face``,
    ``fresh``, ``fallback`` (rows by detection kind), ``p_<emotion>`` (mean over rows with
    a face; NaN when the file has none), ``emotion_mean``, ``emotion_majority``,
    ``majority_share`` (fraction of face rows voting for the majority emotion).
    """
    names = list(class_names) if class_names is not None else class_names_of(predictions)
    pcols = [probability_column(c) for c in names]
    out_columns = [
        "file", "frames", "frames_with_face", "fresh", "fallback", *pcols,
        "emotion_mean", "emotion_majority", "majority_share",
    ]  # fmt: skip
    if predictions.empty:
        return pd.DataFrame(columns=out_columns)
    table = predictions
    has_face = table[pcols[0]].notna() if pcols else pd.Series(False, index=table.index)
    group = table["file"].astype(str)
    files = pd.unique(group)
    frames = table.groupby(group, sort=False)["frame"].nunique()
    face_frames = table[has_face].groupby(group[has_face], sort=False)["frame"].nunique()
    det = pd.crosstab(group, table["detection"].astype(str))
    means = table.loc[has_face, pcols].groupby(group[has_face], sort=False).mean()
    votes = pd.crosstab(group[has_face], table.loc[has_face, "emotion"].astype(str))
    votes = votes.reindex(columns=names, fill_value=0)

    summary = pd.DataFrame({"file": files})
    summary["frames"] = frames.reindex(files).to_numpy(np.int64)
    summary["frames_with_face"] = face_frames.reindex(files).fillna(0).to_numpy(np.int64)
    for kind in ("fresh", "fallback"):
        col = det[kind] if kind in det.columns else pd.Series(0, index=det.index)
        summary[kind] = col.reindex(files).fillna(0).to_numpy(np.int64)
    mean_values = means.reindex(files).to_numpy(np.float64)
    summary[pcols] = mean_values
    vote_values = votes.reindex(files).fillna(0).to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        valid = ~np.isnan(mean_values).any(axis=1)
        best_mean = np.where(valid, np.nan_to_num(mean_values, nan=-1).argmax(axis=1), -1)
        # Majority vote, ties broken by mean probability (scaled far below one vote).
        score = vote_values + 1e-6 * np.nan_to_num(mean_values, nan=0.0)
        best_vote = np.where(valid, score.argmax(axis=1), -1)
        totals = vote_values.sum(axis=1)
        share = np.where(totals > 0, vote_values.max(axis=1) / np.maximum(totals, 1), np.nan)
    summary["emotion_mean"] = pd.Categorical.from_codes(best_mean, categories=names)
    summary["emotion_majority"] = pd.Categorical.from_codes(best_vote, categories=names)
    summary["majority_share"] = share
    summary["file"] = summary["file"].astype("string")
    return summary[out_columns]
