"""A pooled destination's held-out figures per member dataset.

One accuracy over a union of FER-2013 and posed faces is mostly FER-2013's: the report
also scores each member's held-out faces on their own (accuracy, the collapse check and
confidence, raw and after the fold's cross-fitted temperature), comparable with a set
that has that member as its destination.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pathnet_fer.datasets.loading import member_rows
from pathnet_fer.experiments.calibration import KEY_COLUMNS, apply_temperature, mean_std

COLUMNS = [*KEY_COLUMNS, "member", "n", "accuracy", "top_share", "confidence",
           "confidence_calibrated"]  # fmt: skip


def member_scores(
    sets: list[dict[str, Any]], unions: dict[str, list[str]], calibration: pd.DataFrame
) -> pd.DataFrame:
    """One row per held-out set of a union task and member (subjects ``<member>/...``).

    ``calibration``: ``cross_fitted``'s table, whose per-set temperature is applied."""
    rows = []
    temps = (
        calibration.set_index(list(KEY_COLUMNS))["temperature"]
        if len(calibration)
        else pd.Series(dtype=float)
    )
    for s in sets:
        members = unions.get(s["task"])
        if not members:
            continue
        key = tuple(s[c] for c in KEY_COLUMNS)
        t = float(temps.get(key, np.nan))
        for member in members:
            mask = member_rows(s["subject"], member)
            if not mask.any():
                continue
            proba, label = s["proba"][mask], s["label"][mask]
            pred = proba.argmax(1)
            counts = np.bincount(pred, minlength=proba.shape[1])
            cal = apply_temperature(proba, t) if np.isfinite(t) else np.full_like(proba, np.nan)
            rows.append(
                dict(zip(KEY_COLUMNS, key, strict=True))
                | {
                    "member": member,
                    "n": int(mask.sum()),
                    "accuracy": float((pred == label).mean()),
                    "top_share": float(counts.max() / counts.sum()),
                    "confidence": float(proba.max(1).mean()),
                    "confidence_calibrated": float(cal.max(1).mean()),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def members_markdown(table: pd.DataFrame) -> str:
    """The report's section: mean ± std over folds x iterations per member."""
    if table.empty:
        return ""

    lines = [
        "## Pooled destinations by member dataset",
        "",
        "Each member's own held-out faces within a union's folds (every fold holds out "
        "people of every member). top share = share of the most frequent predicted emotion "
        "(collapse check); confidence = mean max-probability, raw and after the fold's "
        "cross-fitted temperature. Mean ± std over folds x iterations.",
        "",
        "| experiment | arm | task | member | faces | accuracy | top share | confidence "
        "| calibrated |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (e, a, t, m), g in table.groupby(["experiment", "arm", "task", "member"], sort=True):
        lines.append(
            f"| {e} | {a} | {t} | {m} | {int(g.n.sum())} | {mean_std(g.accuracy)} "
            f"| {mean_std(g.top_share)} | {mean_std(g.confidence)} | {mean_std(g.confidence_calibrated)} |"
        )
    return "\n".join(lines) + "\n"
