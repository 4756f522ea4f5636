"""What a preprocessing run produced, as numbers and as the text the CLI prints."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pathnet_fer.data.adapter import ALWAYS_EXCLUDED, NEUTRAL_EXCLUDED
from pathnet_fer.faces.dataset import FaceDataset


def summarise(dataset: FaceDataset) -> dict[str, Any]:
    """Counts a user checks after preprocessing (all derived from the manifest/frames)."""
    manifest = dataset.manifest
    ok = manifest[manifest["status"] == "ok"]
    skipped = manifest[manifest["status"] != "ok"]
    reasons = skipped["reason"].map(_reason_kind).value_counts().sort_index()
    crops_per_class = dataset.class_counts()
    return {
        "dataset": dataset.name,
        "clips_ok": int(len(ok)),
        "clips_skipped": int(len(skipped)),
        "skipped_reasons": {str(k): int(v) for k, v in reasons.items()},
        "clips_per_class": {
            name: int((ok["emotion"] == name).sum()) for name in dataset.class_names
        },
        "crops": int(len(dataset)),
        "crops_per_class": {str(k): int(v) for k, v in crops_per_class.items()},
        "empty_classes": [str(k) for k, v in crops_per_class.items() if v == 0],
        "frames": int(ok["n_frames"].sum()),
        "detections": int(ok["n_detections"].sum()),
        "fallbacks": int(ok["n_fallback"].sum()),
        "multi_face_frames": int(manifest["n_multi"].sum()) if "n_multi" in manifest else 0,
        "dropped_frames": int(manifest["n_dropped"].sum()) if "n_dropped" in manifest else 0,
        "subjects": int(ok["subject"].nunique()),
        "processed": dataset.report.processed,
        "from_cache": dataset.report.from_cache,
        "seconds": round(dataset.report.seconds, 2),
        "cache_dir": dataset.report.cache_dir,
    }


def _reason_kind(reason: str) -> str:
    """Group similar reasons ("truncated video /a.mp4: ..." -> "truncated video")."""
    for marker in (" /", ": ", " ("):
        cut = reason.find(marker)
        if cut > 0:
            reason = reason[:cut]
    return reason.strip() or "unknown"


def format_summary(dataset: FaceDataset, max_listed: int = 20) -> str:
    """Human-readable summary: ok/skipped clips with reasons, faces, fallbacks, seconds."""
    s = summarise(dataset)
    settings = dataset.settings
    detection = (
        f"on at {settings.detect_side or 'full'} px, full-frame recheck every "
        f"{settings.recheck_every}"
        if settings.detect
        else "off"
    )
    lines = [
        f"dataset {s['dataset']}: {s['clips_ok']} clips ok, {s['clips_skipped']} skipped, "
        f"{s['subjects']} subjects",
        f"faces: {s['crops']} crops ({settings.size}x{settings.size} {settings.colour}, "
        f"margin {settings.margin}, "
        + (f"blur sigma {settings.blur:g}, " if settings.blur else "")
        + f"every {settings.every}, "
        f"detection {detection}, multi-face '{settings.multi_face}')",
    ]
    if settings.detect:
        share = s["fallbacks"] / s["crops"] if s["crops"] else 0.0
        lines.append(
            f"frames: {s['frames']} decoded, {s['detections']} with a fresh detection, "
            f"{s['fallbacks']} previous-face fallbacks ({share:.1%}), "
            f"{s['multi_face_frames']} with several faces"
            + (
                f", {s['dropped_frames']} dropped (over {settings.max_gap} frames from a face)"
                if settings.max_gap
                else ""
            )
        )
    per_class = ", ".join(
        f"{k} {s['clips_per_class'][k]}/{s['crops_per_class'][k]}" for k in dataset.class_names
    )
    lines.append(f"per class (clips/crops): {per_class}")
    for warning in dataset.report.warnings:
        lines.append(f"WARNING: {warning}")
    if s["empty_classes"]:
        lines.append(f"WARNING: no crops for classes {s['empty_classes']}")
    if s["clips_skipped"]:
        lines.append("skipped: " + ", ".join(f"{k} ({v})" for k, v in s["skipped_reasons"].items()))
        skipped = dataset.manifest[dataset.manifest["status"] != "ok"]
        # Files the label space leaves out on purpose (contempt, neutral, ...) are counted
        # above and listed in the manifest only: listing them on every run buries problems.
        expected = _expected_exclusion(skipped["reason"])
        if expected.any():
            lines.append(
                f"  ({int(expected.sum())} of them excluded by the label space, as expected; "
                "listed in the manifest)"
            )
        skipped = skipped[~expected]
        for row in skipped.head(max_listed).itertuples(index=False):
            lines.append(f"  {row.path}: {row.reason}")
        if len(skipped) > max_listed:
            lines.append(f"  ... and {len(skipped) - max_listed} more (see the manifest)")
    source = (
        "consolidated cache"
        if dataset.report.consolidated
        else (f"{s['processed']} processed, {s['from_cache']} from cache")
    )
    if dataset.report.worker_deaths:
        lines.append(
            f"WARNING: {dataset.report.worker_deaths} worker process(es) died during the run; "
            "their files were retried (see the manifest for any that failed twice)"
        )
    lines.append(f"time: {s['seconds']:.2f} s ({source}); cache: {s['cache_dir']}")
    return "\n".join(lines)


def _expected_exclusion(reasons: pd.Series) -> pd.Series:

    reasons = reasons.astype(str)
    return reasons.str.endswith(NEUTRAL_EXCLUDED) | reasons.str.endswith(ALWAYS_EXCLUDED)


def manifest_problems(manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows of the manifest that need a user's attention (skipped or with fallbacks)."""
    return manifest[(manifest["status"] != "ok") | (manifest["n_fallback"] > 0)]
