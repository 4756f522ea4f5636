"""Temperature scaling: the fit recovers a known over-confidence, and a real run's
figures are cross-fitted (a fold's temperature never sees that fold's faces) while the
deployed final model carries the temperature of every fold and predict applies it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pathnet_fer.experiments.calibration import (
    apply_temperature,
    fit_temperature,
    read_heldout,
)
from pathnet_fer.experiments.config import load_config
from pathnet_fer.experiments.executor import InlineExecutor
from pathnet_fer.experiments.runner import run_experiment


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_fit_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, (4000, 6))
    labels = np.array([rng.choice(6, p=p) for p in _softmax(logits)])  # calibrated at T=1
    overconfident = _softmax(3.0 * logits)  # a model 3x too sure of itself
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    fixed = apply_temperature(overconfident, t)
    assert np.allclose(fixed.sum(1), 1) and (fixed.argmax(1) == overconfident.argmax(1)).all()
    assert np.abs(fixed - _softmax(logits)).max() < 0.05
    # an under-confident model gets T < 1
    assert fit_temperature(_softmax(0.5 * logits), labels) == pytest.approx(0.5, rel=0.1)


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory, require_data):
    require_data("ckplus48")
    require_data("jaffe")
    cache = tmp_path_factory.getbasetemp() / "cache"
    config = load_config(
        "small",
        [
            "sets=[{source: jaffe, destination: ckplus48}]",
            "evolution.generations=6",
            "evolution.minibatches=8",
            "protocol.eval_every=3",
            "protocol.folds=2",
            "protocol.iterations=1",
            "logging.progress=false",
            f"cache_dir={cache}",
        ],
    )
    out = tmp_path_factory.mktemp("calibrated") / "run"
    result = run_experiment(config, out, executor=InlineExecutor(), quiet=True)
    return config, out, result


def test_report_calibration_is_cross_fitted(calibrated_run):
    _, out, _ = calibrated_run
    table = pd.read_csv(out / "calibration.csv")
    sets = read_heldout(out)
    transfer = [s for s in sets if s["arm"] == "transfer" and s["task"] == "ckplus48"]
    assert sorted(int(s["fold"]) for s in transfer) == [1, 2]
    for s in transfer:
        other = next(o for o in transfer if o is not s)
        row = table[(table.arm == "transfer") & (table.task == "ckplus48")
                    & (table.fold == int(s["fold"]))].iloc[0]  # fmt: skip
        # fit on the other fold only: its own faces would give another temperature
        assert row.temperature == pytest.approx(fit_temperature(other["proba"], other["label"]))
        assert row.temperature != pytest.approx(fit_temperature(s["proba"], s["label"]))
        assert row.n == len(s["label"])
        assert row.accuracy_raw == pytest.approx(np.mean(s["proba"].argmax(1) == s["label"]))
        assert row.confidence_calibrated == pytest.approx(
            apply_temperature(s["proba"], row.temperature).max(1).mean()
        )
    md = (out / "summary.md").read_text()
    assert "## Calibration (temperature scaling, cross-fitted)" in md
    tex = (out / "summary.tex").read_text()
    assert "\\subsection*{Calibration" in tex and tex.count("\\begin{tabular}") >= 2
    for name in (
        "calibration_jaffe-to-ckplus48_ckplus48.png",
        "calibration_jaffe-to-ckplus48_ckplus48.pdf",
    ):
        assert (out / "figures" / name).stat().st_size > 0


def test_final_model_carries_the_pooled_temperature_and_predict_applies_it(calibrated_run):
    import torch

    from pathnet_fer.experiments.datasets import load_dataset
    from pathnet_fer.predict.model_file import load_model

    config, out, _ = calibrated_run
    model = load_model(out / "models" / "jaffe-to-ckplus48" / "final.pt")
    transfer = [s for s in read_heldout(out) if s["arm"] == "transfer" and s["task"] == "ckplus48"]
    pooled = fit_temperature(
        np.concatenate([s["proba"] for s in transfer]),
        np.concatenate([s["label"] for s in transfer]),
    )
    assert model.temperature == pytest.approx(pooled) and model.temperature != 1.0
    assert "folds [1, 2]" in model.metadata["calibration"]["fit_on"]
    crops = load_dataset(config, "ckplus48").faces.images[:16]
    with torch.inference_mode():
        logits = model.model(model.features(crops)).double().numpy()
    assert np.allclose(model.predict_proba(crops), _softmax(logits / pooled))
    assert not np.allclose(model.predict_proba(crops), _softmax(logits))
