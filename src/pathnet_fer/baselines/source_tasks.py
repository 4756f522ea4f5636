"""The source task of a baseline that starts from a source model: the rows PathNet's
source unit trains on, and the models trained on them, once per source task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pathnet_fer.baselines.mlp import MLP, MLPConfig
from pathnet_fer.baselines.path_cnn import PathCNN, PathCNNConfig
from pathnet_fer.baselines.source_models import SourceModel, SourceModels, fingerprint, source_key
from pathnet_fer.experiments.phases import source_index
from pathnet_fer.experiments.plan import RunSlot, source_job


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


def source_task(
    config: Any, s: Any, source: Any, iteration: int, fold: int
) -> tuple[np.ndarray, np.ndarray]:
    """The rows and labels PathNet's source unit of run (``iteration``, destination
    ``fold``, 1-based) of set ``s`` trains on: the unit the planner names
    (``plan.source_job``), its rows chosen by ``phases.source_index``, the one place that
    decides them (the ``max_source_frames`` subsample included)."""
    unit = source_job(config, s, RunSlot(iteration, fold))
    train, _ = source_index(config, unit, source)
    return source.x[train], source.y[train]


class SourceTasks:
    """The source models of one set's arms, trained once per source task.

    Shared (another dataset with a single fold, e.g. FER-2013's fixed split): the
    source task does not depend on the destination fold, so ONE model per iteration and
    kind serves every fold; its ``max_source_frames`` subsample is the one the PathNet
    run of fold 1 trains on, and its seed ``seed + 1000 x iteration``. Otherwise (same
    dataset: the fold's test subjects are excluded; another dataset with k folds: its
    fold k) one per fold, seeded ``seed + 1000 x iteration + fold index``.
    """

    def __init__(
        self, config: Any, s: Any, source: Any, shared: bool, models: SourceModels,
        mlp: MLPConfig, cnn: PathCNNConfig | None, conv_lr: float, source_samples: int,
        device: str, say: Callable[[str], None],
    ) -> None:  # fmt: skip
        self.config, self.s, self.source, self.shared = config, s, source, shared
        self.models, self.mlp, self.cnn, self.conv_lr = models, mlp, cnn, conv_lr
        self.samples, self.device, self.say = source_samples, device, say
        self._rows: tuple[tuple[int, int | None], tuple[np.ndarray, np.ndarray, str]] | None = None

    def rows(self, iteration: int, fold: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Source rows, labels and their fingerprint for destination ``fold`` (1-based; the
        last task's kept in memory)."""
        key = (iteration, None if self.shared else fold)
        if self._rows is None or self._rows[0] != key:
            x, y = source_task(
                self.config, self.s, self.source, iteration, 1 if self.shared else fold
            )
            self._rows = (key, (x, y, fingerprint(x, y, self.source.class_names)))
        return self._rows[1]

    def model(self, kind: str, iteration: int, fold: int) -> SourceModel:
        """The ``kind`` source model of run (``iteration``, destination ``fold``, 1-based)."""
        x, y, digest = self.rows(iteration, fold)
        seed = self.config.seed + 1000 * iteration + (0 if self.shared else fold - 1)
        n_src, dim = len(self.source.class_names), int(x.shape[1])
        if kind == "cnn":
            assert self.cnn is not None
            shape = self.cnn.to_dict()
            opt = dict(lr=self.conv_lr, momentum=0.0, batch_size=self.mlp.batch_size)

            def build() -> torch.nn.Module:
                _seeded(seed)
                return PathCNN(self.cnn, n_src)
        else:
            shape = {**self.mlp.to_dict(), "input_dim": dim}
            opt = dict(lr=self.mlp.lr, momentum=self.mlp.momentum, batch_size=self.mlp.batch_size)

            def build() -> torch.nn.Module:
                _seeded(seed)
                return MLP(dim, n_src, self.mlp.layers, self.mlp.width)

        sgd = {**opt, "seed": seed + 7, "device": self.device}
        key = source_key(
            kind=kind, model=shape, data=digest, samples=self.samples, sgd=opt, seed=seed
        )
        folds = "all" if self.shared else fold
        describe = dict(
            experiment=self.s.name, source=self.s.source, iteration=iteration, folds=folds,
            rows=len(y), samples=self.samples, seed=seed, data=digest, model=shape,
            classes=list(self.source.class_names),
        )  # fmt: skip
        found = self.models.get(
            kind, key, build, lambda: (x, y), self.source.class_names, self.samples, sgd, describe
        )
        if found.status != "memory":
            what = "trained" if found.status == "trained" else f"loaded from {found.path}"
            self.say(
                f"{self.s.name} iteration {iteration} source {kind} ({self.s.source}, "
                f"folds {folds}, {len(y):,} rows, {self.samples:,} samples): {what}"
            )
        return found
