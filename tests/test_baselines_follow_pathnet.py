"""Baselines see what PathNet sees: its sample budget and its source subsample."""

from __future__ import annotations

import numpy as np

from pathnet_fer.baselines.arm_training import budget_samples
from pathnet_fer.baselines.source_tasks import source_task
from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.phases import source_phase
from pathnet_fer.experiments.plan import RunSlot, source_job


def test_budget_follows_the_evolution_settings() -> None:
    config = load_config("small", ["evolution.minibatches=8", "evolution.batch_size=4"])
    assert budget_samples(6, None, config.evolution) == 6 * 2 * 8 * 4
    assert budget_samples(6, 100, config.evolution) == 100
    assert budget_samples(6, None) == 6 * 2 * 50 * 16  # the paper's schedule by default


def test_source_subsample_is_the_rows_pathnet_trains_on(require_data) -> None:
    require_data("ckplus48")
    require_data("jaffe")
    config = load_config(
        "small",
        [
            "sets=[{source: ckplus48, destination: jaffe}]",
            "faces.size=16",
            "protocol.folds=2",
            "protocol.iterations=2",
            "protocol.max_source_frames=150",
        ],
    )
    s = config.sets[0]
    datasets = {n: load_dataset(config, n, workers=1) for n in ("ckplus48", "jaffe")}
    checked = 0
    for iteration in (1, 2):
        for fold in (1, 2):
            unit = source_job(config, s, RunSlot(iteration, fold))
            rows = source_phase(config, unit, datasets["ckplus48"]).data[0]
            x, y = source_task(config, s, datasets["ckplus48"], iteration, fold)
            assert len(x) == 150
            assert np.array_equal(x, rows.x) and np.array_equal(y, rows.y)
            checked += 1
    assert checked == 4


def test_each_run_announces_itself_and_small_cnns_get_one_thread(require_data, tmp_path):
    import os

    from pathnet_fer.baselines.arm_training import cnn_threads_for
    from pathnet_fer.baselines.runner import run_baselines
    from pathnet_fer.baselines.settings import BaselineSettings

    assert cnn_threads_for("cifar", None) == 1
    assert cnn_threads_for("resnet50", None) == max(1, os.cpu_count() or 1)
    assert cnn_threads_for("cifar", 3) == 3
    require_data("ckplus48")
    config = load_config(
        "small",
        [
            "sets=[{source: ckplus48, destination: ckplus48}]",
            "faces.size=16",
            "evolution.generations=1",
            "protocol.folds=3",
        ],
    )
    settings = BaselineSettings.from_dict({"models": "mlp", "folds": [1], "max_samples": 64})
    lines: list[str] = []
    run_baselines(config, settings, tmp_path, progress=lines.append)
    runs = [line for line in lines if "train loss" in line]
    starts = [line for line in lines if line.endswith("thread(s)) ...")]
    assert len(runs) == len(starts) == 2  # mlp-scratch, mlp-finetune
    assert all(lines.index(a) < lines.index(b) for a, b in zip(starts, runs, strict=True))
    assert "64 samples" in starts[0]
