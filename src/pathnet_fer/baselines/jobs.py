"""A baseline as jobs for the study's executors: one job per arm of one run (set,
iteration, destination fold), and one per source model the arms start from.

``execute_baseline_job`` is the job function the executors call (inline, local processes,
Dask), as ``execute_job`` is a study's. A job returns its metric rows; the coordinator
(``runner.py``) is the only writer of ``metrics.csv``. What several jobs of one process
share (the loaded datasets, a backbone's features, the source models) is kept per run
directory in that process, so an inline run loads and extracts each once.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from pathnet_fer.baselines.arm_training import (
    RunContext,
    budget_samples,
    cnn_threads_for,
    log_rows,
    path_cnn_config,
    train_cnn_arm,
    train_source_arm,
    train_vector_baseline,
)
from pathnet_fer.baselines.finetune import FinetuneConfig
from pathnet_fer.baselines.mlp import MLPConfig
from pathnet_fer.baselines.path_cnn import PathCNNConfig
from pathnet_fer.baselines.settings import (
    PATH_CNN_ARMS,
    SOURCE_ARMS,
    VECTOR_BASELINES,
    BaselineConfigError,
    BaselineSettings,
    arm_label,
)
from pathnet_fer.baselines.sgd_training import predict_proba, torch_threads
from pathnet_fer.baselines.source_models import SourceModels
from pathnet_fer.baselines.source_tasks import SourceTasks, source_task
from pathnet_fer.datasets.loading import LoadedDataset, load_dataset
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.datasets import dataset_folds
from pathnet_fer.experiments.plan import RunSlot, set_named, source_job
from pathnet_fer.names import slug
from pathnet_fer.pathnet.device import resolve_device
from pathnet_fer.scoring.metrics import evaluate_proba


@dataclass(frozen=True)
class BaselineJob:
    """One arm of one run (``model``/``mode`` set), or one source model (``source_kind``)."""

    job_id: str
    experiment: str  # the set's name
    iteration: int
    fold: int  # the destination fold, 1-based (a source shared by every fold: 1)
    settings: BaselineSettings = field(default_factory=BaselineSettings)
    model: str = ""
    mode: str = ""
    source_kind: str = ""  # "cnn" | "mlp": the job trains (or finds) that source model
    after: tuple[str, ...] = ()  # the source job an arm starts from
    cost: float = 1.0  # samples it trains on: the Dask priority (longest first)
    cores: int = 1  # the cores this job may use (the machine's over the jobs run at once)
    session: str = ""  # the coordinator's session: a worker's caches of another are dropped

    @property
    def arm(self) -> str:
        return arm_label(self.model, self.mode, self.settings)


def device_of(config: ExperimentConfig) -> str:
    """The config's device as torch names it (``auto``: CUDA when present)."""
    try:
        return str(resolve_device(config.device))
    except RuntimeError as err:
        raise BaselineConfigError(str(err)) from None


def mlp_config(config: ExperimentConfig, settings: BaselineSettings) -> MLPConfig:
    """The MLP the size of one linear PathNet path of the config."""
    return MLPConfig.like_path(
        layers=int(config.pathnet.get("layers", 3)),
        units=int(config.pathnet.get("units", 20)),
        max_active=int(config.pathnet.get("max_active", 5)),
        lr=float(settings.mlp_lr or config.evolution.get("lr", 0.02)),
    )


@dataclass
class SetContext:
    """What every job of one set derives from the config and the data, once per process."""

    dest: LoadedDataset
    source: LoadedDataset
    folds: list[Any]
    samples: int
    source_samples: int
    cnn_shape: PathCNNConfig | None
    sources: SourceTasks


@dataclass
class RunResources:
    """A process's share of one baselines run: data, features and models jobs reuse."""

    datasets: dict[str, LoadedDataset] = field(default_factory=dict)
    features: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)
    sets: dict[str, SetContext] = field(default_factory=dict)
    source_models: SourceModels | None = None


_RESOURCES: dict[str, tuple[str, RunResources]] = {}
"""run directory -> (the coordinator session they belong to, what its jobs share here)."""


def start_run(run_dir: str, session: str, datasets: dict[str, LoadedDataset] | None = None) -> None:
    """Hold ``datasets`` for the jobs of ``session`` on ``run_dir`` in this process (the
    coordinator's already loaded data, used by jobs run inline)."""
    _RESOURCES[run_dir] = (session, RunResources(datasets=dict(datasets or {})))


def end_run(run_dir: str) -> None:
    """Drop what this process holds for ``run_dir``."""
    _RESOURCES.pop(run_dir, None)


def resources(run_dir: str, session: str) -> RunResources:
    """This process's resources of ``session`` on ``run_dir``; a worker that served an
    earlier session on the same directory (other settings, other data) starts afresh."""
    held = _RESOURCES.get(run_dir)
    if held is None or held[0] != session:
        held = (session, RunResources())
        _RESOURCES[run_dir] = held
    return held[1]


def set_context(
    config: ExperimentConfig, settings: BaselineSettings, res: RunResources, run_dir: str, name: str
) -> SetContext:
    if name in res.sets:
        return res.sets[name]
    s = set_named(config, name)
    for dataset in (s.source, s.destination):
        if dataset not in res.datasets:
            res.datasets[dataset] = load_dataset(config, dataset, progress=False)
    dest, source = res.datasets[s.destination], res.datasets[s.source]
    src_folds = None if s.source == s.destination else dataset_folds(config, s.source, source)
    shared = src_folds is not None and len(src_folds) == 1
    source_samples = budget_samples(
        config.generations("source"), settings.max_samples, config.evolution
    )
    uses_cnn = any(m in PATH_CNN_ARMS for m in settings.models) or "cnn" in settings.models
    cnn_shape = path_cnn_config(config, s.destination, dest) if uses_cnn else None
    if res.source_models is None:
        res.source_models = SourceModels(os.path.join(run_dir, "source_models"))
    mlp = mlp_config(config, settings)
    conv_lr = float(settings.conv_lr or config.evolution.get("lr", 0.02))
    sources = SourceTasks(
        config, s, source, shared, res.source_models, mlp, cnn_shape, conv_lr,
        source_samples, device_of(config), lambda _line: None,
    )  # fmt: skip
    context = SetContext(
        dest=dest,
        source=source,
        folds=dataset_folds(config, s.destination, dest),
        samples=budget_samples(
            config.generations("destination"), settings.max_samples, config.evolution
        ),
        source_samples=source_samples,
        cnn_shape=cnn_shape,
        sources=sources,
    )
    res.sets[name] = context
    return context


def execute_baseline_job(
    job: BaselineJob, config: ExperimentConfig, run_dir: str, position: int = 1
) -> dict[str, Any]:
    """Run one baseline job; return its metric rows, the lines it has to say, the weights
    a pre-trained CNN used and the source models it trained or loaded."""
    del position  # no progress bar of its own: the coordinator reports each job
    settings = job.settings
    res = resources(run_dir, job.session)
    ctx_set = set_context(config, settings, res, run_dir, job.experiment)
    notes: list[str] = []
    ctx_set.sources.say = notes.append
    vector_threads = int(config.executor.threads or 1)
    store = res.source_models
    if job.source_kind:
        threads = (
            int(settings.cnn_threads or vector_threads)
            if job.source_kind == "cnn"
            else (vector_threads)
        )
        with torch_threads(threads):
            ctx_set.sources.model(job.source_kind, job.iteration, job.fold)
        return {"rows": [], "notes": notes, "weights_used": {}, "source_models": store.records}
    return _run_arm(job, config, res, ctx_set, notes, vector_threads)


def _run_arm(
    job: BaselineJob,
    config: ExperimentConfig,
    res: RunResources,
    ctx_set: SetContext,
    notes: list[str],
    vector_threads: int,
) -> dict[str, Any]:
    settings, model, dest = job.settings, job.model, ctx_set.dest
    device = device_of(config)
    fold = ctx_set.folds[job.fold - 1]
    ctx = RunContext(
        job.experiment, job.iteration, job.fold, dest.name, len(dest.class_names),
        config.seed + 1000 * job.iteration + fold.index, ctx_set.samples,
        ctx_set.source_samples, device,
    )  # fmt: skip
    train, test = fold.train_index, fold.test_index
    arm = job.arm
    if model in PATH_CNN_ARMS:
        threads = int(settings.cnn_threads or vector_threads)
    elif model in VECTOR_BASELINES:
        threads = vector_threads
    else:
        threads = cnn_threads_for(model, settings.cnn_threads, job.cores)
    doing = (
        "the source model on the held-out faces (no destination training)"
        if arm.endswith("-zeroshot")
        else f"training ({ctx.samples:,} samples, {threads} thread(s))"
    )
    where = f"{job.experiment} iteration {job.iteration} fold {job.fold}"
    notes.append(f"{where} {arm}: {doing} ...")
    mlp = mlp_config(config, settings)
    weights_used: dict[str, dict[str, str]] = {}
    if model in SOURCE_ARMS or model == "cnn-scratch":
        with torch_threads(threads):
            kind = SOURCE_ARMS.get(model)
            src = ctx_set.sources.model(kind, job.iteration, job.fold) if kind else None
            conv_lr = float(settings.conv_lr or config.evolution.get("lr", 0.02))
            lr = conv_lr if model.startswith("cnn") else mlp.lr
            momentum = 0.0 if model.startswith("cnn") else mlp.momentum
            sgd = dict(batch_size=mlp.batch_size, device=device, lr=lr, momentum=momentum)
            _, proba, log, seconds, n_params = train_source_arm(
                model, ctx, dest.x[train], dest.y[train], dest.x[test], dest.class_names, src,
                ctx_set.cnn_shape, sgd,
            )  # fmt: skip
    elif model in VECTOR_BASELINES:
        src_x = src_y = None
        if model == "progressive":
            s = set_named(config, job.experiment)
            src_x, src_y = source_task(config, s, ctx_set.source, job.iteration, job.fold)
        with torch_threads(vector_threads):
            net, log, seconds, n_params = train_vector_baseline(
                model, ctx, dest.x[train], dest.y[train], src_x, src_y, mlp
            )
            proba = predict_proba(net, dest.x[test], device=device)
    else:
        cfg = FinetuneConfig(
            lr=settings.cnn_lr,
            momentum=settings.cnn_momentum,
            input_size=settings.input_size,
            device=device,
            finetune=job.mode or "full",
        )
        with torch_threads(threads):
            proba, log, seconds, n_params, arm, choice = train_cnn_arm(
                model, cfg, settings.weights_for(model), ctx, dest, train, test,
                res.features,
            )  # fmt: skip
        weights_used[model] = choice.to_dict()
    evaluation = evaluate_proba(
        proba, dest.y[test], dest.clips[test], ctx.n_classes, config.protocol.clip_vote
    )
    rows = log_rows(ctx, arm, log, seconds, n_params, evaluation)
    trained = f"train loss {log.final_loss:.3f}" if log.loss else "no training"
    notes.append(
        f"{where} {arm}: {trained}, test acc {evaluation.frame['accuracy']:.3f} (frame), "
        f"{seconds:.1f}s"
    )
    store = res.source_models
    return {
        "rows": rows,
        "notes": notes,
        "weights_used": weights_used,
        "source_models": store.records if store is not None else {},
    }


def plan_baseline_jobs(
    config: ExperimentConfig,
    settings: BaselineSettings,
    arms: list[tuple[str, str]],
    folds_of: dict[str, tuple[list[int], bool]],
    finished: set[tuple[str, int, int, str]],
) -> tuple[list[BaselineJob], list[str]]:
    """Every arm job not yet in ``finished``, each after the source job it needs, in the
    order a serial run takes them (set, iteration, fold, arm); and a line for each run
    skipped as done.

    ``folds_of``: a set's name -> (the destination folds to run, 1-based; whether one
    source model serves them all)."""
    iterations = range(1, (settings.iterations or config.protocol.iterations) + 1)
    gens = config.generations
    samples = budget_samples(gens("destination"), settings.max_samples, config.evolution)
    source_samples = budget_samples(gens("source"), settings.max_samples, config.evolution)
    jobs: dict[str, BaselineJob] = {}
    skipped: list[str] = []
    runs = [
        (s.name, it, fold, shared)
        for s in config.sets
        if s.name in folds_of
        for it in iterations
        for fold, shared in [(f, folds_of[s.name][1]) for f in folds_of[s.name][0]]
    ]
    for (name, it, fold, shared), (model, mode) in itertools.product(runs, arms):
        arm = arm_label(model, mode, settings)
        if (name, it, fold, arm) in finished:
            skipped.append(f"skip {name} iteration {it} fold {fold} {arm} (done)")
            continue
        run = dict(experiment=name, iteration=it, settings=settings)
        after: tuple[str, ...] = ()
        kind = SOURCE_ARMS.get(model)
        if kind:
            # Named after PathNet's source unit: sets that start from the same source task
            # share one job (and one model: the store's key is the task, not the set).
            unit = source_job(config, set_named(config, name), RunSlot(it, 1 if shared else fold))
            source_id = f"baseline__{unit.job_id}__{kind}"
            jobs.setdefault(
                source_id,
                BaselineJob(
                    source_id, **run, fold=1 if shared else fold, source_kind=kind,
                    cost=float(source_samples),
                ),
            )  # fmt: skip
            after = (source_id,)
        job_id = f"baseline__{slug(name)}__it{it}__fold{fold}__{arm}"
        jobs[job_id] = BaselineJob(
            job_id, **run, fold=fold, model=model, mode=mode, after=after, cost=float(samples)
        )
    return list(jobs.values()), skipped
