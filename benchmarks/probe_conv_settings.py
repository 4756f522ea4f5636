"""Probe: which conv readout / input normalisation learns at the paper's lr on CK+48.

One subject-independent split of CK+48 (30 of its subjects held out, seed 0), one run per
setting, 20 generations of the paper's schedule; held-out accuracy of the best path.
A quick screen for defaults, not a study: docs/results-conv.md has the 6-fold figures.

Run: ``.venv/bin/python benchmarks/probe_conv_settings.py`` (~3-6 minutes on 2 cores).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.pathnet import PathNet, PathNetConfig

SETTINGS = (  # (readout_features, input_norm, lr)
    ("flatten", "image", 0.02),
    ("flatten", "none", 0.02),
    ("avg", "image", 0.02),
    ("flatten", "image", 0.1),
)


def main() -> None:
    data = load_dataset(load_config("small"), "ckplus48")
    subjects = sorted(set(data.subjects))
    np.random.default_rng(0).shuffle(subjects)
    test = np.isin(data.subjects, subjects[:30])
    x_tr, y_tr = torch.tensor(data.x[~test]), torch.tensor(data.y[~test])
    x_te, y_te = torch.tensor(data.x[test]), torch.tensor(data.y[test])
    print(f"CK+48: {int((~test).sum())} training crops, {int(test.sum())} held out (30 subjects)")
    for readout, norm, lr in SETTINGS:
        config = PathNetConfig(
            input_dim=2304,
            module="conv",
            image_shape=(48, 48, 1),
            readout_features=readout,
            input_norm=norm,
        )
        net = PathNet(config, runs=1, seed=0)
        start = time.perf_counter()
        task = evolve(
            net, TaskData(x_tr, y_tr), n_classes=6, config=EvolutionConfig(generations=20, lr=lr)
        )
        accuracy = float((net.predict(x_te, task) == y_te).float().mean())
        print(
            f"readout {readout:7s} input_norm {norm:5s} lr {lr:<5}: held-out {accuracy:.3f} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
