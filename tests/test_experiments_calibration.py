"""Temperature scaling: the fit recovers a known over-confidence. On a real run
(tests/test_experiments_protocol.py, beside the other outputs of its tiny study) the
figures are cross-fitted and the final model carries the pooled temperature."""

from __future__ import annotations

import numpy as np
import pytest

from pathnet_fer.experiments.calibration import apply_temperature, fit_temperature


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
