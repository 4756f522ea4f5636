"""Logistic regression on the destination's pixels: the honest floor on small sets.

scikit-learn's multinomial logistic regression (L2, ``C``) on standardised flattened
crops, folded into one ``nn.Linear`` so it is scored by the same code as every other
baseline (softmax of the linear scores = sklearn's ``predict_proba`` for multinomial).
No source task: it sees only the destination's training subjects.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pathnet_fer.baselines.sgd_training import SAMPLES_PER_GENERATION, TrainingLog


def train_logistic(
    x: np.ndarray, y: np.ndarray, n_classes: int, seed: int, c: float = 1.0
) -> tuple[nn.Linear, TrainingLog]:
    """Fit on ``(x, y)``; return the equivalent linear layer and a one-row training log
    (log-loss and accuracy on the training data)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, dtype=np.float64)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    model.fit(scaler.transform(x), y)
    coef = np.zeros((n_classes, x.shape[1]))
    intercept = np.full(n_classes, -1e4)  # a class absent from training is never predicted
    coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # sklearn's binary form: one score for class 1
        coef[model.classes_[0]], intercept[model.classes_[0]] = 0.0, 0.0
    scale = scaler.scale_
    weight = coef / scale
    bias = intercept - weight @ scaler.mean_
    layer = nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        layer.bias.copy_(torch.from_numpy(bias))
    with torch.no_grad():
        proba = torch.softmax(layer(torch.from_numpy(x).float()).double(), 1).numpy()
    picked = np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0)
    log = TrainingLog(batch_size=SAMPLES_PER_GENERATION)
    log.loss.append(float(-np.log(picked).mean()))
    log.accuracy.append(float((proba.argmax(1) == y).mean()))
    log.samples_seen = len(y)
    return layer, log
