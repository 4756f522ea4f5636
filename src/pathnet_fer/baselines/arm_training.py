"""Train one baseline arm on one destination fold, and its metric rows.

Each arm is seeded on its own (``RunContext.seed``), so arms give the same result in any
order, in any process.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pathnet_fer.baselines.cnn_zoo import build_cnn
from pathnet_fer.baselines.finetune import FinetuneConfig, extract_features, finetune_cnn
from pathnet_fer.baselines.logistic import train_logistic
from pathnet_fer.baselines.mlp import MLP, MLPConfig
from pathnet_fer.baselines.path_cnn import PathCNN, PathCNNConfig, body_features, zero_shot_proba
from pathnet_fer.baselines.progressive import ProgressiveNet
from pathnet_fer.baselines.settings import CONVERGENCE_FITS, FROZEN_BODY
from pathnet_fer.baselines.sgd_training import (
    TrainingLog,
    predict_proba,
    samples_for_generations,
    train_sgd,
)
from pathnet_fer.baselines.source_models import SourceModel
from pathnet_fer.baselines.weights import WeightsChoice, resolve_weights
from pathnet_fer.datasets.loading import face_settings_for
from pathnet_fer.pathnet import PathNetConfig


@dataclass
class RunContext:
    """Everything one (set, iteration, fold) shares across baselines."""

    experiment: str
    iteration: int
    fold: int
    task: str
    n_classes: int
    seed: int
    samples: int  # destination budget in samples
    source_samples: int
    device: str


def budget_samples(
    generations: int, cap: int | None, evolution: dict[str, Any] | None = None
) -> int:
    """The PathNet-equivalent budget in samples, capped by ``max_samples`` if set.

    ``evolution``: the experiment's evolution settings, whose ``minibatches`` and
    ``batch_size`` a PathNet generation trains on (default: the paper's 50 x 16)."""
    evolution = evolution or {}
    samples = samples_for_generations(
        generations, evolution.get("minibatches", 50), evolution.get("batch_size", 16)
    )
    return min(samples, cap) if cap else samples


SMALL_CNNS = frozenset({"cifar"})
"""CNNs whose per-minibatch work is too small for several threads: on a loaded machine one
thread trains them several times faster than all cores fighting over them."""


def cnn_threads_for(model: str, setting: int | None, cores: int | None = None) -> int:
    """Torch threads for a CNN arm: ``cnn_threads`` when set, else 1 for a small CNN and
    ``cores`` (default: every core) for an ImageNet-sized one."""
    if setting:
        return int(setting)
    return 1 if model in SMALL_CNNS else max(1, cores or os.cpu_count() or 1)


def log_rows(
    ctx: RunContext,
    arm: str,
    log: TrainingLog,
    seconds: float,
    parameters: int,
    evaluation: Any,
) -> list[dict[str, object]]:
    """Metric rows of one trained baseline: learning curve, cost, held-out scores."""
    base = dict(
        experiment=ctx.experiment, iteration=ctx.iteration, fold=ctx.fold, task=ctx.task, arm=arm
    )
    loss, acc = log.per_generation()
    rows = []
    for g in range(len(loss)):
        for metric, value in (("loss", loss[g]), ("accuracy", acc[g])):
            rows.append({**base, "generation": g + 1, "split": "train", "level": "minibatch",
                         "metric": metric, "value": float(value)})  # fmt: skip
    final = len(loss)
    cost = [("train_seconds", seconds), ("parameters", parameters)]
    if arm not in CONVERGENCE_FITS:
        cost.append(("samples", ctx.samples))  # the report flags budgets unlike PathNet's
    for metric, value in cost:
        rows.append({**base, "generation": final, "split": "train", "level": "minibatch",
                     "metric": metric, "value": float(value)})  # fmt: skip
    for level, scores in evaluation.by_level().items():
        for metric, value in scores.items():
            rows.append({**base, "generation": final, "split": "test", "level": level,
                         "metric": metric, "value": float(value)})  # fmt: skip
    return rows


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


def train_vector_baseline(
    kind: str,
    ctx: RunContext,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_source: np.ndarray | None,
    y_source: np.ndarray | None,
    mlp: MLPConfig,
) -> tuple[torch.nn.Module, TrainingLog, float, int]:
    """Train ``mlp-scratch``, ``progressive`` or ``logreg`` on flattened crops (the arms
    that start from a source model: ``train_source_arm``)."""
    _seeded(ctx.seed)
    dim = x_train.shape[1]
    if kind == "logreg":
        start = time.perf_counter()
        layer, log = train_logistic(x_train, y_train, ctx.n_classes, ctx.seed)
        return (
            layer.to(ctx.device),
            log,
            time.perf_counter() - start,
            layer.weight.numel() + layer.bias.numel(),
        )
    opt = dict(lr=mlp.lr, momentum=mlp.momentum, batch_size=mlp.batch_size, device=ctx.device)
    if kind == "progressive":
        net = ProgressiveNet(dim, mlp.layers, mlp.width).to(ctx.device)
        if x_source is not None:
            net.add_column(int(y_source.max()) + 1)
            net.to(ctx.device)
            train_sgd(
                net.column_model(0),
                x_source,
                y_source,
                ctx.source_samples,
                seed=ctx.seed + 7,
                **opt,
            )
        column = net.add_column(ctx.n_classes)
        net.to(ctx.device)
        model = net.column_model(column)
        start = time.perf_counter()
        log = train_sgd(model, x_train, y_train, ctx.samples, seed=ctx.seed, **opt)
        return model, log, time.perf_counter() - start, sum(p.numel() for p in net.parameters())
    net = MLP(dim, ctx.n_classes, mlp.layers, mlp.width).to(ctx.device)
    start = time.perf_counter()
    log = train_sgd(net, x_train, y_train, ctx.samples, seed=ctx.seed, **opt)
    return net, log, time.perf_counter() - start, sum(p.numel() for p in net.parameters())


def train_source_arm(
    arm: str,
    ctx: RunContext,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    class_names: tuple[str, ...],
    source: SourceModel | None,
    cnn: PathCNNConfig | None,
    sgd: dict[str, Any],
) -> tuple[torch.nn.Module, np.ndarray, TrainingLog, float, int]:
    """One path-sized arm on a destination fold: ``(model, test proba, log, seconds, params)``.

    ``cnn-scratch``: a fresh ``PathCNN(cnn)`` trained on the destination. ``-finetune`` /
    ``cnn-full``: a copy of the source model with a new readout, every layer trained.
    ``cnn-head``: the same, the conv layers frozen (the readout trains on their features,
    computed once). ``-zeroshot``: the source model itself, no destination training, its
    classes mapped by emotion name (``path_cnn.zero_shot_proba``).
    """
    device = ctx.device
    if arm.endswith("-zeroshot"):
        assert source is not None
        proba = predict_proba(source.model, x_test, device=device)
        proba = zero_shot_proba(proba, source.class_names, class_names)
        n_params = sum(p.numel() for p in source.model.parameters())
        return source.model, proba, TrainingLog(batch_size=sgd["batch_size"]), 0.0, n_params
    if arm.endswith("-scratch"):
        _seeded(ctx.seed)
        assert cnn is not None
        net = PathCNN(cnn, ctx.n_classes).to(device)
    else:
        assert source is not None
        net = copy.deepcopy(source.model)  # the cached source model is never changed
        _seeded(ctx.seed)
        net.new_readout(ctx.n_classes)
        net.to(device)
    net.train()
    start = time.perf_counter()
    if arm in FROZEN_BODY:
        for p in net.body_parameters():
            p.requires_grad_(False)
        features = body_features(net, x_train, device=device)
        log = train_sgd(net.readout, features, y_train, ctx.samples, seed=ctx.seed, **sgd)
    else:
        log = train_sgd(net, x_train, y_train, ctx.samples, seed=ctx.seed, **sgd)
    seconds = time.perf_counter() - start
    proba = predict_proba(net, x_test, device=device)
    return net, proba, log, seconds, sum(p.numel() for p in net.parameters())


def path_cnn_config(config: Any, dataset: str, data: Any) -> PathCNNConfig:
    """The CNN the size of one conv path of the experiment's ``pathnet`` settings, for a
    dataset's crops (image shape from its face settings). A linear-module experiment
    gets the conv defaults (channels 8, 16, 32 for 3 layers)."""
    faces = face_settings_for(config, dataset)
    shape = (int(faces.size), int(faces.size), 3 if faces.colour == "rgb" else 1)
    net = PathNetConfig(
        input_dim=data.input_dim, image_shape=shape, **{**config.pathnet, "module": "conv"}
    )
    return PathCNNConfig.like_path(net)


def train_cnn_arm(
    model: str,
    cfg: FinetuneConfig,
    weights: str,
    ctx: RunContext,
    dest: Any,
    train: np.ndarray,
    test: np.ndarray,
    feature_cache: dict[tuple[str, str], torch.Tensor],
) -> tuple[np.ndarray, TrainingLog, float, int, str, WeightsChoice]:
    """Fine-tune one CNN on a fold; frozen-backbone features are computed once per dataset.

    In head mode the backbone's features do not depend on the fold, so they are
    extracted for the whole dataset on the first fold (its ``train_seconds`` carries that
    cost) and sliced for later folds.
    """
    key = (model, ctx.task)
    cached = None
    extraction_seconds = 0.0  # charged to the fold that pays for the extraction
    if cfg.finetune == "head" and resolve_weights(model, weights).pretrained:
        cached = feature_cache.get(key)
        if cached is None:
            start = time.perf_counter()
            backbone, _ = build_cnn(model, ctx.n_classes, weights, cfg.input_size)
            cached = extract_features(backbone.to(cfg.device), dest.faces.images, cfg.feature_batch)
            feature_cache[key] = cached
            extraction_seconds = time.perf_counter() - start
    fitted = finetune_cnn(
        model, dest.faces.images[train], dest.y[train], ctx.samples, ctx.n_classes, weights,
        cfg, ctx.seed, features=cached[train] if cached is not None else None,
    )  # fmt: skip
    fitted.train_seconds += extraction_seconds
    feats = cached[test] if fitted.mode == "head" else None
    proba = fitted.predict_proba(dest.faces.images[test], features=feats)
    return proba, fitted.log, fitted.train_seconds, fitted.parameters, fitted.arm, fitted.weights
