"""Logistic regression on pixels: folded into a linear layer exactly, learns CK+48."""

from __future__ import annotations

import numpy as np
import torch

from pathnet_fer.baselines.logistic import train_logistic


def test_logistic_layer_reproduces_sklearn_and_beats_chance(require_data):
    require_data("ckplus48")
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from pathnet_fer.datasets.loading import load_dataset
    from pathnet_fer.experiments.config_loading import load_config

    data = load_dataset(load_config("small"), "ckplus48")
    subjects = np.unique(data.subjects)
    test = np.isin(data.subjects, subjects[::4])  # a quarter of the people held out
    layer, log = train_logistic(data.x[~test], data.y[~test], 6, seed=0)
    with torch.no_grad():
        proba = torch.softmax(layer(torch.from_numpy(data.x[test])).double(), 1).numpy()
    scaler = StandardScaler().fit(data.x[~test].astype(np.float64))
    ref = LogisticRegression(max_iter=2000, random_state=0).fit(
        scaler.transform(data.x[~test].astype(np.float64)), data.y[~test]
    )
    expected = ref.predict_proba(scaler.transform(data.x[test].astype(np.float64)))
    np.testing.assert_allclose(proba, expected, atol=1e-4)
    accuracy = float((proba.argmax(1) == data.y[test]).mean())
    assert accuracy > 0.6  # six classes: chance ~0.27 for the largest class
    assert log.accuracy[0] > accuracy and len(log.loss) == 1
