"""The experiment protocol with conv modules: a tiny real study end to end (CK+48 and
JAFFE crops as images), parameter counts with conv weights, exported conv models."""

from __future__ import annotations

import pandas as pd
import pytest

from pathnet_fer.experiments.config_loading import load_config
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
    config = load_config("small", [*TINY_CONV, f"cache_dir={tmp_path / 'cache'}"])
    out = tmp_path / "run"
    run_experiment(config, out, executor=InlineExecutor(), quiet=True)
    metrics = read_metrics(out)
    assert set(metrics.arm) == {"source", "transfer", "scratch", "zero-shot"}
    test = metrics[(metrics.split == "test") & (metrics.metric == "accuracy")]
    assert test.value.between(0, 1).all() and len(test) > 0
    params = metrics[metrics.metric == "parameters"].value
    # A best path has 1-3 distinct modules per layer (4, 4, 8 channels of 3x3), plus a
    # 6-class readout on 12x12x8 flattened features: the count is one of these sums.
    sizes = ((4 * 9 + 4), (4 * 4 * 9 + 4), (8 * 4 * 9 + 8))
    readout = 6 * (8 * 12 * 12 + 1)
    possible = {
        readout + a * sizes[0] + b * sizes[1] + c * sizes[2]
        for a in (1, 2, 3)
        for b in (1, 2, 3)
        for c in (1, 2, 3)
    }
    assert set(params) <= possible and max(params) <= readout + 3 * sum(sizes)
    models = sorted((out / "models").rglob("*.pt"))
    assert models
    for path in models:
        loaded = load_model(path)
        # a heads model (a chain's every link) holds conv paths too
        configs = [h["config"] for h in loaded.config.get("heads", [])] or [loaded.config]
        assert {c["format"] for c in configs} == {"pathnet-fer-conv-path-model"}, path.name
    summary = pd.read_csv(out / "summary.csv")
    assert {"transfer", "scratch"} <= set(summary.arm)
    _check_publication_outputs(out, len(config.sets))


def _check_publication_outputs(out, n_sets: int) -> None:
    """LaTeX tables that parse (balanced environments, one cell count per table) and
    vector figures beside the 300-dpi PNGs."""
    tex = (out / "summary.tex").read_text()
    assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") >= n_sets
    for block in tex.split("\\begin{tabular}")[1:]:
        spec, body = block.split("\n", 1)
        columns = spec.count("l") + spec.count("r")
        rows = [r for r in body.split("\\end{tabular}")[0].splitlines() if r.endswith("\\\\")]
        assert rows and all(r.count(" & ") == columns - 1 for r in rows), block[:200]
    assert "±" not in tex and "->" not in tex.replace("$\\rightarrow$", "")
    pngs = sorted((out / "figures").glob("*.png"))
    assert pngs
    for png in pngs:
        pdf = png.with_suffix(".pdf")
        assert pdf.read_bytes()[:5] == b"%PDF-", pdf


def test_p_values_are_formatted_for_papers():
    from pathnet_fer.experiments.report import format_p

    assert format_p(0.0) == "< 0.001" and format_p(2e-7) == "< 0.001"
    assert format_p(0.0312) == "0.0312" and format_p(float("nan")) == "n/a"
