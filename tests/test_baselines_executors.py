"""Baselines run as a study's jobs: the same executors, the same lock, the same rows."""

from __future__ import annotations

import pytest

from pathnet_fer.baselines.runner import run_baselines
from pathnet_fer.baselines.settings import BaselineSettings

OVERRIDES = [
    "sets=[{source: ckplus48, destination: ckplus48}]",
    "faces.size=16",
    "evolution.generations=1",
    "protocol.folds=2",
    "protocol.max_source_frames=200",
]
KEY = ["experiment", "iteration", "fold", "task", "arm", "split", "level", "metric", "generation"]


def _rows(metrics):
    kept = metrics[metrics.metric != "train_seconds"]  # wall time: the only thing that varies
    return kept.sort_values(KEY).reset_index(drop=True)


@pytest.fixture(scope="module")
def settings():
    return BaselineSettings.from_dict({"models": "mlp,logreg,cnn-scratch", "max_samples": 96})


def test_a_pool_of_processes_gives_the_inline_rows(require_data, tmp_path, settings):
    """Every arm seeded on its own and the fine-tuned arm waiting for its source job: the
    same figures in any process and any order."""
    require_data("ckplus48")
    from pathnet_fer.experiments.config_loading import load_config

    inline = load_config("small", [*OVERRIDES, "executor.kind=inline"])
    pool = load_config("small", [*OVERRIDES, "executor.kind=local", "executor.workers=2"])
    lines: list[str] = []
    a = run_baselines(inline, settings, tmp_path / "inline", progress=None)
    b = run_baselines(pool, settings, tmp_path / "pool", progress=lines.append)
    arms = {"mlp-scratch", "mlp-finetune", "logreg", "cnn-scratch"}
    assert set(a.arm) == arms and set(a.fold) == {1, 2}
    assert len(a) == len(b) and _rows(a).equals(_rows(b))
    # one source model per fold (same-dataset source: the fold's test subjects excluded),
    # trained by its own job before the arms that start from it
    trained = [line for line in lines if "source mlp" in line and line.endswith("trained")]
    assert len(trained) == 2
    assert any(line == "8/8 baseline runs done" for line in lines)


def test_a_locked_run_directory_is_refused(require_data, tmp_path, settings):
    require_data("ckplus48")
    from pathnet_fer.experiments.config_loading import load_config
    from pathnet_fer.experiments.run_dir import RunDirLockedError, RunLock

    config = load_config("small", [*OVERRIDES, "executor.kind=inline"])
    tmp_path.mkdir(exist_ok=True)
    with RunLock(tmp_path).acquire(), pytest.raises(RunDirLockedError, match="in use"):
        run_baselines(config, settings, tmp_path, progress=None)
    assert not (tmp_path / "metrics.csv").exists()


def test_sets_with_one_source_task_share_its_source_job(require_data, tmp_path):
    """CK+48 -> JAFFE and CK+48 -> CK+48 start from the same source task (PathNet's source
    unit of each fold): one job trains each model once, on a pool too, and both sets' arms
    start from it."""
    require_data("ckplus48")
    require_data("jaffe")
    from pathnet_fer.experiments.config_loading import load_config

    two_sets = (
        "sets=[{source: ckplus48, destination: jaffe}, {source: ckplus48, destination: ckplus48}]"
    )
    config = load_config(
        "small", [two_sets, *OVERRIDES[1:], "executor.kind=local", "executor.workers=2"]
    )
    settings = BaselineSettings.from_dict({"models": "mlp-finetune", "max_samples": 64})
    from pathnet_fer.baselines.jobs import plan_baseline_jobs
    from pathnet_fer.baselines.settings import expand_arms

    folds = {s.name: ([1, 2], False) for s in config.sets}
    jobs, _ = plan_baseline_jobs(config, settings, expand_arms(settings), folds, set())
    sources = [j for j in jobs if j.source_kind]
    assert len(sources) == 2 and len(jobs) == 6  # 2 source models, 2 sets x 2 folds of arms
    assert all(j.after == (sources[j.fold - 1].job_id,) for j in jobs if not j.source_kind)
    lines: list[str] = []
    metrics = run_baselines(config, settings, tmp_path, progress=lines.append)
    assert set(metrics.experiment) == {"ckplus48->jaffe", "ckplus48->ckplus48"}
    assert set(metrics.fold) == {1, 2}
    trained = [line for line in lines if "source mlp" in line and line.endswith("trained")]
    assert len(trained) == 2  # one per fold, not one per set and fold
    assert len(list((tmp_path / "source_models").glob("*.pt"))) == 2
