"""What a baselines run directory records: its settings (checked on resume), the runs
already finished in its metrics.csv, and the report's header."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pathnet_fer.baselines.arm_training import budget_samples
from pathnet_fer.baselines.settings import (
    SELECTION_KEYS,
    BaselineConfigError,
    BaselineSettings,
    arm_label,
)
from pathnet_fer.experiments.metrics_log import read_metrics
from pathnet_fer.experiments.provenance import host, package_versions


def done_runs(metrics_path: Path) -> set[tuple[str, int, int, str]]:
    """(experiment, iteration, fold, arm) already finished in an existing metrics.csv;
    the rows of runs that did not finish are removed from it."""
    if not metrics_path.exists() or metrics_path.stat().st_size == 0:
        return set()
    frame = read_metrics(metrics_path)
    tests = frame[frame["split"] == "test"]
    finished = set(zip(tests.experiment, tests.iteration, tests.fold, tests.arm, strict=True))
    run = list(zip(frame.experiment, frame.iteration, frame.fold, frame.arm, strict=True))
    keep = np.array([key in finished for key in run], dtype=bool)
    if not keep.all():
        # A run killed while its rows were written left some of them: drop them, the run
        # is trained again and writes all its rows once (never a duplicate key).
        tmp = metrics_path.with_name(metrics_path.name + ".tmp")
        frame[keep].to_csv(tmp, index=False)
        os.replace(tmp, metrics_path)
    return finished


def check_same_settings(out_dir: Path, config: Any, settings: BaselineSettings) -> None:
    """Refuse to add runs to a directory whose earlier runs used other settings."""
    path = out_dir / "baselines_config.yaml"
    if not path.exists() or not (out_dir / "metrics.csv").exists():
        return
    old = yaml.safe_load(path.read_text()) or {}
    new = json.loads(
        json.dumps({"experiment": config.to_dict(), "baselines": settings.to_dict()}, default=str)
    )
    diffs = []
    for section in ("experiment", "baselines"):
        for key in sorted(set(old.get(section, {})) | set(new[section])):
            if section == "baselines" and key in SELECTION_KEYS:
                continue
            if section == "experiment" and key in ("sets", "protocol", "executor", "logging"):
                continue
            a, b = old.get(section, {}).get(key), new[section].get(key)
            if a != b:
                diffs.append(f"{section}.{key}: {a!r} -> {b!r}")
    old_p, new_p = old.get("experiment", {}).get("protocol", {}), new["experiment"]["protocol"]
    for key in ("folds", "clip_vote", "stratify", "max_source_frames", "source_generations",
                "destination_generations"):  # fmt: skip
        if old_p.get(key) != new_p.get(key):
            diffs.append(f"experiment.protocol.{key}: {old_p.get(key)!r} -> {new_p.get(key)!r}")
    if diffs:
        raise BaselineConfigError(
            f"{out_dir} holds baseline runs made with other settings ("
            + "; ".join(diffs[:8])
            + "); choose another --out or remove it"
        )


def report_header(config: Any, settings: BaselineSettings) -> str:
    gens = config.generations("destination")
    ev = config.evolution
    cap = f", capped at {settings.max_samples:,} samples" if settings.max_samples else ""
    return (
        f"# Baselines: {config.name}\n\n"
        f"Budget per task: {gens} PathNet generations = {budget_samples(gens, None, ev):,} "
        f"samples seen (2 paths x {ev.get('minibatches', 50)} minibatches x "
        f"{ev.get('batch_size', 16)} per generation){cap}. `train loss (paper-style)` "
        "= mean loss over the last generation-equivalent (100 minibatches of 16)."
    )


def write_run_config(
    out_dir: Path, config: Any, settings: BaselineSettings, arms: list[tuple[str, str]],
    weights_used: dict[str, dict[str, str]], device: str,
    source_models: dict[str, dict[str, Any]] | None = None,
) -> None:  # fmt: skip
    path = out_dir / "baselines_config.yaml"
    # Source models an earlier run of this directory used stay listed (their files stay).
    earlier = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    record = {
        "experiment": config.to_dict(),
        "baselines": settings.to_dict(),
        "arms": [arm_label(m, mode, settings) for m, mode in arms],
        "weights_used": weights_used,
        "source_models": {**(earlier.get("source_models") or {}), **(source_models or {})},
        "device": device,
        "seed": config.seed,
        "versions": package_versions(),
        "host": host(),
    }
    path.write_text(yaml.safe_dump(json.loads(json.dumps(record, default=str)), sort_keys=False))
