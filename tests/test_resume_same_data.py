"""Resuming a run on a data root with other content is refused before any job runs."""

from __future__ import annotations

import shutil

import pytest

from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.executor import InlineExecutor
from pathnet_fer.experiments.run_compat import RunDirError
from pathnet_fer.experiments.runner import run_experiment

TINY = [
    "sets=[{source: ckplus48, destination: ckplus48}]",
    "faces.size=16",
    "evolution.generations=2",
    "evolution.minibatches=2",
    "protocol.eval_every=2",
    "protocol.folds=2",
    "protocol.iterations=1",
    "logging.progress=false",
    "save_models=none",
]


def test_resume_on_other_data_is_refused_moved_data_is_not(tmp_path, require_data) -> None:
    real = require_data("ckplus48")
    moved = tmp_path / "moved"
    shutil.copytree(real, moved / "ckplus48")  # the same data at another place
    other = tmp_path / "other"
    shutil.copytree(real, other / "ckplus48")
    for png in (other / "ckplus48").glob("*/S010_*.png"):  # one subject fewer
        png.unlink()
    out = tmp_path / "run"
    first = run_experiment(load_config("small", TINY), out, executor=InlineExecutor(), quiet=True)
    folds = (out / "folds.csv").read_text()
    jobs = sorted(p.name for p in (out / "jobs").iterdir())
    with pytest.raises(RunDirError, match="was started on other data"):
        run_experiment(
            load_config("small", [*TINY, f"data_root={other}"]),
            out,
            executor=InlineExecutor(),
            quiet=True,
        )
    assert (out / "folds.csv").read_text() == folds
    assert sorted(p.name for p in (out / "jobs").iterdir()) == jobs
    again = run_experiment(
        load_config("small", [*TINY, f"data_root={moved}"]),
        out,
        executor=InlineExecutor(),
        quiet=True,
    )
    assert again.metrics.equals(first.metrics)
