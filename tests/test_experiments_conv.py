"""The experiment protocol with conv modules: a tiny real study end to end (CK+48 and
JAFFE crops as images), parameter counts with conv weights, exported conv models."""

from __future__ import annotations

import pandas as pd
import pytest

from pathnet_fer.experiments.config import load_config
from pathnet_fer.experiments.executor import InlineExecutor
from pathnet_fer.experiments.metrics_log import read_metrics
from pathnet_fer.experiments.runner import run_experiment
from pathnet_fer.predict import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_CONV = [
    "pathnet.module=conv",
    "pathnet.channels=[4,4,8]",
    "pathnet.modules=8",
    "pathnet.max_active=3",
    "evolution.generations=3",
    "evolution.minibatches=4",
    "evolution.selection_samples=128",
    "protocol.eval_every=3",
    "protocol.folds=2",
    "protocol.iterations=1",
    "logging.progress=false",
]


def test_tiny_conv_study_runs_every_arm_and_exports_conv_models(tmp_path, require_data):
    require_data("ckplus48")
    require_data("jaffe")
    config = load_config("demo", [*TINY_CONV, f"cache_dir={tmp_path / 'cache'}"])
    out = tmp_path / "run"
    run_experiment(config, out, executor=InlineExecutor(), quiet=True)
    metrics = read_metrics(out)
    assert set(metrics.arm) == {"source", "transfer", "scratch"}
    test = metrics[(metrics.split == "test") & (metrics.metric == "accuracy")]
    assert test.value.between(0, 1).all() and len(test) > 0
    params = metrics[metrics.metric == "parameters"].value
    # 3 generations barely mutate: every best path has 3 distinct modules per layer
    # (4, 4, 8 channels of 3x3), plus a 6-class readout on 12x12x8 flattened features.
    modules = 3 * ((4 * 9 + 4) + (4 * 4 * 9 + 4) + (8 * 4 * 9 + 8))
    assert set(params) == {modules + 6 * (8 * 12 * 12 + 1)}
    models = sorted((out / "models").rglob("*.pt"))
    assert models
    for path in models:
        loaded = load_model(path)
        assert loaded.config["format"] == "pathnet-fer-conv-path-model"
    summary = pd.read_csv(out / "summary.csv")
    assert {"transfer", "scratch"} <= set(summary.arm)
