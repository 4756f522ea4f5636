"""Run the baselines on an experiment config's data, folds and budget; write its metrics.

Fairness rules (docs/baselines.md): the same face crops (the config's face settings),
the same subject folds (``experiments.folds.subject_folds`` with the config's seed, fold
count and stratification), the same budget in samples seen (a destination task of G
generations = G x 2 paths x 50 minibatches x 16 samples), and the same metrics writer,
so ``summary.md`` shows baselines beside PathNet's ``transfer`` and ``scratch`` arms.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from pathnet_fer.baselines.cnn_zoo import MODEL_NAMES, build_cnn
from pathnet_fer.baselines.finetune import (
    FINETUNE_MODES,
    FinetuneConfig,
    extract_features,
    finetune_cnn,
)
from pathnet_fer.baselines.logistic import train_logistic
from pathnet_fer.baselines.mlp import MLP, MLPConfig
from pathnet_fer.baselines.path_cnn import PathCNN, PathCNNConfig, body_features, zero_shot_proba
from pathnet_fer.baselines.progressive import ProgressiveNet
from pathnet_fer.baselines.sgd_training import (
    TrainingLog,
    predict_proba,
    samples_for_generations,
    torch_threads,
    train_sgd,
)
from pathnet_fer.baselines.source_models import SourceModel, SourceModels, fingerprint, source_key
from pathnet_fer.baselines.weights import WeightsChoice, resolve_weights

PATH_CNN_ARMS = ("cnn-scratch", "cnn-head", "cnn-full", "cnn-zeroshot")
"""The CNN the size of one conv PathNet path (``path_cnn.py``): from scratch, pre-trained on
the set's source task then head-only / fully fine-tuned, and the source model zero-shot."""
SOURCE_ARMS = {
    "mlp-finetune": "mlp",
    "mlp-zeroshot": "mlp",
    "cnn-head": "cnn",
    "cnn-full": "cnn",
    "cnn-zeroshot": "cnn",
}
"""Arms that start from a source model (its kind): trained once per source task
(``source_models.py``), shared by every destination fold that has the same source task."""
# Baselines on the flattened crops PathNet sees (``mlp`` and ``cnn`` expand to arms).
VECTOR_BASELINES = (
    "mlp", "mlp-scratch", "mlp-finetune", "mlp-zeroshot", "progressive", "logreg",
    "cnn", *PATH_CNN_ARMS,
)  # fmt: skip
KNOWN_MODELS = (*MODEL_NAMES, *VECTOR_BASELINES)
# Runs offline with the weights packages installed: the default model list.
DEFAULT_MODELS = ("mobilenet_v2", "efficientnet_lite0", "cifar", "mlp", "progressive", "logreg")


class BaselineConfigError(ValueError):
    """A bad ``baselines:`` setting, with the key in the message."""


@dataclass
class BaselineSettings:
    """The ``baselines:`` section of an experiment config (all keys optional)."""

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    finetune: list[str] = field(default_factory=lambda: ["head"])  # head and/or full
    weights: dict[str, str] = field(
        default_factory=dict
    )  # model -> auto|torchvision|package|none|PATH
    default_weights: str = "auto"
    input_size: int | None = None  # None: each backbone's native size (224, 299, 32)
    cnn_lr: float = 0.01
    cnn_momentum: float = 0.9
    mlp_lr: float | None = None  # None: the PathNet SGD rate (evolution.lr)
    conv_lr: float | None = None  # the path-sized CNN's SGD rate (None: evolution.lr)
    iterations: int | None = None  # None: protocol.iterations
    folds: list[int] | None = None  # run only these folds, 1-based as in metrics.csv (None: all)
    sets: list[str] | None = None  # run only these experiment sets (None: all)
    max_samples: int | None = None  # cap on samples per task (None: the PathNet budget)
    cnn_threads: int | None = None  # torch threads for CNN work (None: 1 small, else all)

    def validate(self) -> BaselineSettings:
        unknown = [m for m in self.models if m not in KNOWN_MODELS]
        if unknown:
            raise BaselineConfigError(
                f"baselines.models: unknown {unknown}; known: {', '.join(KNOWN_MODELS)}"
            )
        if not self.models:
            raise BaselineConfigError("baselines.models is empty")
        bad = [m for m in self.finetune if m not in FINETUNE_MODES]
        if bad or not self.finetune:
            raise BaselineConfigError(
                f"baselines.finetune must list {' and/or '.join(FINETUNE_MODES)}, got {self.finetune}"
            )
        for key in ("conv_lr", "mlp_lr"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise BaselineConfigError(f"baselines.{key} must be > 0 or null, got {value}")
        for key in ("iterations", "max_samples", "input_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise BaselineConfigError(f"baselines.{key} must be >= 1 or null, got {value}")
        return self

    def weights_for(self, model: str) -> str:
        return self.weights.get(model, self.default_weights)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BaselineSettings:
        data = dict(data or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise BaselineConfigError(
                f"unknown key(s) {', '.join('baselines.' + k for k in unknown)}; known: {', '.join(names)}"
            )
        for key in ("models", "finetune", "folds", "sets"):
            if isinstance(data.get(key), str):
                data[key] = [s.strip() for s in data[key].split(",") if s.strip()]
            elif isinstance(data.get(key), int):
                data[key] = [data[key]]
        if isinstance(data.get("weights"), str):
            data["weights"] = parse_weights_option(data["weights"])
        if "weights" in data and "*" in data["weights"]:
            data["default_weights"] = data["weights"].pop("*")
        return cls(**data).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_weights_option(text: str) -> dict[str, str]:
    """``--weights`` value -> {model: spec}; a bare value applies to every model (``*``).

    ``auto`` | ``none`` | ``torchvision`` | ``package`` | ``PATH`` | ``model=SPEC,model=SPEC``.
    """
    out: dict[str, str] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        model, sep, spec = part.partition("=")
        if sep and model in KNOWN_MODELS:
            out[model] = spec
        elif sep:
            raise BaselineConfigError(f"--weights {part!r}: unknown model {model!r}")
        else:
            out["*"] = part
    return out


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


def cnn_threads_for(model: str, setting: int | None) -> int:
    """Torch threads for a CNN arm: ``cnn_threads`` when set, else 1 for a small CNN and
    every core for an ImageNet-sized one."""
    if setting:
        return int(setting)
    return 1 if model in SMALL_CNNS else max(1, os.cpu_count() or 1)


def pathnet_source_seed(config: Any, set_name: str, iteration: int, fold: int) -> int:
    """The seed the PathNet protocol subsamples this run's source task with
    (``max_source_frames``): the same rows for the baselines' source task."""
    from pathnet_fer.experiments.plan import RunSlot, set_named, source_job

    return source_job(config, set_named(config, set_name), RunSlot(iteration, fold)).seed


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
    if arm != "logreg":  # its budget: a fit to convergence, not samples seen
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
    if arm == "cnn-head":
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
    from pathnet_fer.datasets.loading import face_settings_for
    from pathnet_fer.pathnet import PathNetConfig

    faces = face_settings_for(config, dataset)
    shape = (int(faces.size), int(faces.size), 3 if faces.colour == "rgb" else 1)
    net = PathNetConfig(
        input_dim=data.input_dim, image_shape=shape, **{**config.pathnet, "module": "conv"}
    )
    return PathCNNConfig.like_path(net)


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
        self, config: Any, s: Any, source: Any, src_folds: list | None, models: SourceModels,
        mlp: MLPConfig, cnn: PathCNNConfig | None, conv_lr: float, source_samples: int,
        device: str, say: Callable[[str], None],
    ) -> None:  # fmt: skip
        self.config, self.s, self.source, self.src_folds = config, s, source, src_folds
        self.models, self.mlp, self.cnn, self.conv_lr = models, mlp, cnn, conv_lr
        self.samples, self.device, self.say = source_samples, device, say
        self.shared = src_folds is not None and len(src_folds) == 1
        self._rows: tuple[tuple[int, int | None], tuple[np.ndarray, np.ndarray, str]] | None = None

    def rows(self, iteration: int, fold: Any) -> tuple[np.ndarray, np.ndarray, str]:
        """Source rows, labels and their fingerprint (the last task's kept in memory)."""
        key = (iteration, None if self.shared else fold.index)
        if self._rows is None or self._rows[0] != key:
            seed = pathnet_source_seed(
                self.config, self.s.name, iteration, 1 if self.shared else fold.index + 1
            )
            x, y = source_task(self.config, self.s, self.source, fold, self.src_folds, seed)
            self._rows = (key, (x, y, fingerprint(x, y, self.source.class_names)))
        return self._rows[1]

    def model(self, kind: str, iteration: int, fold: Any) -> SourceModel:
        x, y, digest = self.rows(iteration, fold)
        seed = self.config.seed + 1000 * iteration + (0 if self.shared else fold.index)
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
        folds = "all" if self.shared else fold.index + 1
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


def expand_arms(settings: BaselineSettings) -> list[tuple[str, str]]:
    """(model, mode) pairs to run: CNNs x fine-tune modes, and the vector baselines."""
    pairs: list[tuple[str, str]] = []
    for model in settings.models:
        if model == "mlp":
            pairs += [("mlp-scratch", ""), ("mlp-finetune", "")]
        elif model == "cnn":
            pairs += [(arm, "") for arm in PATH_CNN_ARMS]
        elif model in VECTOR_BASELINES:
            pairs.append((model, ""))
        elif model == "cifar" or settings.weights_for(model) == "none":
            pairs.append((model, "full"))  # from scratch: always trains fully
        else:
            pairs += [(model, mode) for mode in settings.finetune]
    return list(dict.fromkeys(pairs))


def versions() -> dict[str, str]:
    import torchvision

    from pathnet_fer import __version__

    return {
        "pathnet_fer": __version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def done_runs(metrics_path: Path) -> set[tuple[str, int, int, str]]:
    """(experiment, iteration, fold, arm) already finished in an existing metrics.csv;
    the rows of runs that did not finish are removed from it."""
    if not metrics_path.exists() or metrics_path.stat().st_size == 0:
        return set()
    from pathnet_fer.experiments.metrics_log import read_metrics

    frame = read_metrics(metrics_path)
    tests = frame[frame["split"] == "test"]
    finished = set(zip(tests.experiment, tests.iteration, tests.fold, tests.arm, strict=True))
    run = list(zip(frame.experiment, frame.iteration, frame.fold, frame.arm, strict=True))
    keep = np.array([key in finished for key in run], dtype=bool)
    if not keep.all():
        # A run killed while its rows were written left some of them: drop them, the run
        # is trained again and writes all its rows once (never a duplicate key).
        tmp = metrics_path.with_name(metrics_path.name + ".tmp")
        frame[keep].to_csv(tmp, index=False)
        os.replace(tmp, metrics_path)
    return finished


def run_baselines(
    config: Any,
    settings: BaselineSettings,
    out_dir: str | Path,
    datasets: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = print,
) -> pd.DataFrame:
    """Train and score every baseline on every set/iteration/fold; return the metrics.

    ``config``: an ``experiments.config.ExperimentConfig``. ``datasets``:
    ``experiments.datasets.LoadedDataset`` by name when already loaded (else loaded with
    the experiment's own ``load_dataset``; folds come from its ``dataset_folds``). Runs
    already in ``out_dir/metrics.csv`` are skipped, so a killed run resumes.
    """
    from pathnet_fer.datasets.loading import load_dataset
    from pathnet_fer.experiments.datasets import check_link_leaks, dataset_folds
    from pathnet_fer.experiments.metrics_log import MetricsWriter, read_metrics
    from pathnet_fer.experiments.report import write_report
    from pathnet_fer.experiments.union_checks import check_union_files
    from pathnet_fer.scoring.metrics import evaluate_proba

    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    sets = [s for s in config.sets if settings.sets is None or s.name in settings.sets]
    if not sets:
        raise BaselineConfigError(
            f"baselines.sets {settings.sets} match none of {[s.name for s in config.sets]}"
        )
    arms = expand_arms(settings)
    for model in {m for m, _ in arms if m not in VECTOR_BASELINES}:
        resolve_weights(model, settings.weights_for(model))  # fail before hours of work
    check_union_files(config)  # as an experiment does: no face twice, none leaked
    datasets = dict(datasets or {})
    for s in sets:
        for name in (s.source, s.destination):
            if name not in datasets:
                datasets[name] = load_dataset(config, name)
    check_link_leaks(config, datasets, sets)
    iterations = settings.iterations or config.protocol.iterations
    mlp = MLPConfig.like_path(
        layers=int(config.pathnet.get("layers", 3)),
        units=int(config.pathnet.get("units", 20)),
        max_active=int(config.pathnet.get("max_active", 5)),
        lr=float(settings.mlp_lr or config.evolution.get("lr", 0.02)),
    )
    cnn_cfg = FinetuneConfig(
        lr=settings.cnn_lr,
        momentum=settings.cnn_momentum,
        input_size=settings.input_size,
        device=device,
    )
    metrics_path = out_dir / "metrics.csv"
    check_same_settings(out_dir, config, settings)
    finished = done_runs(metrics_path)
    weights_used: dict[str, dict[str, str]] = {}
    _write_run_config(out_dir, config, settings, arms, weights_used, device)
    feature_cache: dict[tuple[str, str], torch.Tensor] = {}
    vector_threads = int(getattr(config.executor, "threads", 1) or 1)
    source_models = SourceModels(out_dir / "source_models")
    conv_lr = float(settings.conv_lr or config.evolution.get("lr", 0.02))
    path_sgd = dict(batch_size=mlp.batch_size, device=device)
    with MetricsWriter(metrics_path) as writer:
        for s in sets:
            dest, source = datasets[s.destination], datasets[s.source]
            folds = dataset_folds(config, s.destination, dest)
            src_folds = (
                None if s.source == s.destination else dataset_folds(config, s.source, source)
            )
            wanted = [f for f in folds if settings.folds is None or f.index + 1 in settings.folds]
            samples = budget_samples(
                config.generations("destination"), settings.max_samples, config.evolution
            )
            source_samples = budget_samples(
                config.generations("source"), settings.max_samples, config.evolution
            )
            uses_cnn = any(m in PATH_CNN_ARMS for m, _ in arms)
            cnn_shape = path_cnn_config(config, s.destination, dest) if uses_cnn else None
            if any(m in SOURCE_ARMS for m, _ in arms) and source.input_dim != dest.input_dim:
                raise BaselineConfigError(
                    f"set {s.name!r}: source crops give {source.input_dim} features, "
                    f"destination {dest.input_dim}; use the same faces.size and faces.colour"
                )
            sources = SourceTasks(
                config, s, source, src_folds, source_models, mlp, cnn_shape, conv_lr,
                source_samples, device, say,
            )  # fmt: skip
            for iteration in range(1, iterations + 1):
                for fold in wanted:
                    ctx = RunContext(
                        s.name, iteration, fold.index + 1, s.destination, len(dest.class_names),
                        config.seed + 1000 * iteration + fold.index, samples, source_samples, device,
                    )  # fmt: skip
                    train, test = fold.train_index, fold.test_index
                    src_x = src_y = None
                    for model, mode in arms:
                        arm = _arm_label(model, mode, settings)
                        if (s.name, iteration, ctx.fold, arm) in finished:
                            say(f"skip {s.name} iteration {iteration} fold {ctx.fold} {arm} (done)")
                            continue
                        if model in PATH_CNN_ARMS:
                            threads = int(settings.cnn_threads or vector_threads)
                        elif model in VECTOR_BASELINES:
                            threads = vector_threads
                        else:
                            threads = cnn_threads_for(model, settings.cnn_threads)
                        doing = (
                            "the source model on the held-out faces (no destination training)"
                            if arm.endswith("-zeroshot")
                            else f"training ({ctx.samples:,} samples, {threads} thread(s))"
                        )
                        say(f"{s.name} iteration {iteration} fold {ctx.fold} {arm}: {doing} ...")
                        if model in SOURCE_ARMS or model == "cnn-scratch":
                            with torch_threads(threads):
                                kind = SOURCE_ARMS.get(model)
                                src = sources.model(kind, iteration, fold) if kind else None
                                lr = conv_lr if model.startswith("cnn") else mlp.lr
                                momentum = 0.0 if model.startswith("cnn") else mlp.momentum
                                _, proba, log, seconds, n_params = train_source_arm(
                                    model, ctx, dest.x[train], dest.y[train], dest.x[test],
                                    dest.class_names, src,
                                    cnn_shape,
                                    {**path_sgd, "lr": lr, "momentum": momentum},
                                )  # fmt: skip
                        elif model in VECTOR_BASELINES:
                            if src_x is None and model == "progressive":
                                src_x, src_y = source_task(
                                    config, s, source, fold, src_folds,
                                    pathnet_source_seed(config, s.name, iteration, ctx.fold),
                                )  # fmt: skip
                            with torch_threads(vector_threads):
                                net, log, seconds, n_params = train_vector_baseline(
                                    model, ctx, dest.x[train], dest.y[train], src_x, src_y, mlp
                                )
                                proba = predict_proba(net, dest.x[test], device=device)
                        else:
                            cfg = dataclasses.replace(cnn_cfg, finetune=mode or "full")
                            with torch_threads(threads):
                                proba, log, seconds, n_params, arm, choice = train_cnn_arm(
                                    model, cfg, settings.weights_for(model), ctx, dest,
                                    train, test, feature_cache,
                                )  # fmt: skip
                            weights_used[model] = choice.to_dict()
                        evaluation = evaluate_proba(
                            proba, dest.y[test], dest.clips[test], ctx.n_classes,
                            config.protocol.clip_vote,
                        )  # fmt: skip
                        writer.log_many(log_rows(ctx, arm, log, seconds, n_params, evaluation))
                        writer.flush()
                        trained = f"train loss {log.final_loss:.3f}" if log.loss else "no training"
                        say(
                            f"{s.name} iteration {iteration} fold {ctx.fold} {arm}: {trained}, "
                            f"test acc {evaluation.frame['accuracy']:.3f} (frame), {seconds:.1f}s"
                        )
    _write_run_config(out_dir, config, settings, arms, weights_used, device, source_models.records)
    metrics = read_metrics(metrics_path)
    write_report(out_dir, metrics, header=_report_header(config, settings))
    return metrics


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


# Settings that only select which runs happen (not what a run computes): a resumed run may
# change them.
SELECTION_KEYS = ("models", "finetune", "folds", "sets", "iterations", "cnn_threads", "weights")


def check_same_settings(out_dir: Path, config: Any, settings: BaselineSettings) -> None:
    """Refuse to add runs to a directory whose earlier runs used other settings."""
    path = out_dir / "baselines_config.yaml"
    if not path.exists() or not (out_dir / "metrics.csv").exists():
        return
    old = yaml.safe_load(path.read_text()) or {}
    new = json.loads(
        json.dumps({"experiment": config.to_dict(), "baselines": settings.to_dict()}, default=str)
    )
    diffs = []
    for section in ("experiment", "baselines"):
        for key in sorted(set(old.get(section, {})) | set(new[section])):
            if section == "baselines" and key in SELECTION_KEYS:
                continue
            if section == "experiment" and key in ("sets", "protocol", "executor", "logging"):
                continue
            a, b = old.get(section, {}).get(key), new[section].get(key)
            if a != b:
                diffs.append(f"{section}.{key}: {a!r} -> {b!r}")
    old_p, new_p = old.get("experiment", {}).get("protocol", {}), new["experiment"]["protocol"]
    for key in ("folds", "clip_vote", "stratify", "max_source_frames", "source_generations",
                "destination_generations"):  # fmt: skip
        if old_p.get(key) != new_p.get(key):
            diffs.append(f"experiment.protocol.{key}: {old_p.get(key)!r} -> {new_p.get(key)!r}")
    if diffs:
        raise BaselineConfigError(
            f"{out_dir} holds baseline runs made with other settings ("
            + "; ".join(diffs[:8])
            + "); choose another --out or remove it"
        )


def _arm_label(model: str, mode: str, settings: BaselineSettings) -> str:
    if model in VECTOR_BASELINES:
        return model
    if model == "cifar" or settings.weights_for(model) == "none":
        return f"{model}-scratch"
    return f"{model}-{mode}"


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when present, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BaselineConfigError(f"device {device!r} asked for but CUDA is not available")
    return device


def source_task(
    config: Any, s: Any, source: Any, fold: Any, src_folds: list | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The source task's training data for one destination fold, as the PathNet protocol.

    Same dataset: every source sample except the destination fold's test subjects.
    Cross-dataset: fold k of the source's own subject folds (training side). The
    protocol's ``max_source_frames`` cap applies (a seeded subsample).
    """
    from pathnet_fer.datasets.folds import exclude_subjects

    if src_folds is None:
        index = exclude_subjects(source.subjects, fold.test_subjects)
    else:
        index = src_folds[fold.index % len(src_folds)].train_index
    cap = config.protocol.max_source_frames
    if cap and len(index) > cap:
        index = np.sort(np.random.default_rng(seed).choice(index, cap, replace=False))
    return source.x[index], source.y[index]


def _report_header(config: Any, settings: BaselineSettings) -> str:
    gens = config.generations("destination")
    ev = config.evolution
    cap = f", capped at {settings.max_samples:,} samples" if settings.max_samples else ""
    return (
        f"# Baselines: {config.name}\n\n"
        f"Budget per task: {gens} PathNet generations = {budget_samples(gens, None, ev):,} "
        f"samples seen (2 paths x {ev.get('minibatches', 50)} minibatches x "
        f"{ev.get('batch_size', 16)} per generation){cap}. `train loss (paper-style)` "
        "= mean loss over the last generation-equivalent (100 minibatches of 16)."
    )


def _write_run_config(
    out_dir: Path, config: Any, settings: BaselineSettings, arms: list[tuple[str, str]],
    weights_used: dict[str, dict[str, str]], device: str,
    source_models: dict[str, dict[str, Any]] | None = None,
) -> None:  # fmt: skip
    path = out_dir / "baselines_config.yaml"
    # Source models an earlier run of this directory used stay listed (their files stay).
    earlier = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    record = {
        "experiment": config.to_dict(),
        "baselines": settings.to_dict(),
        "arms": [_arm_label(m, mode, settings) for m, mode in arms],
        "weights_used": weights_used,
        "source_models": {**(earlier.get("source_models") or {}), **(source_models or {})},
        "device": device,
        "seed": config.seed,
        "versions": versions(),
    }
    path.write_text(yaml.safe_dump(json.loads(json.dumps(record, default=str)), sort_keys=False))
