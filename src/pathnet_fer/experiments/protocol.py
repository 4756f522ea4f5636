"""The paper's protocol: source task -> destination with transfer, and from scratch.

For each experiment set, iteration and fold: evolve the source task, fix its best path
(re-initialising everything else), evolve the destination task (``transfer`` arm); and
evolve the same destination task from a fresh network with the same budget (``scratch``
arm). Folds are split by subject on the destination dataset; when the source is the same
dataset, the source task trains on the destination fold's training subjects only, so its
test subjects are never seen by either arm.

Work is cut into jobs (:class:`JobSpec`): by default one per set and arm chain, holding
all folds x iterations as the batched runs of one PathNet. A job is a pure function of
(config, job, run directory): any executor (local processes, later Dask) can run it, and
it resumes from its own checkpoint.
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathnet_fer.experiments.config import ExperimentConfig, SetSpec, build_config
from pathnet_fer.experiments.evaluation import Evaluation, evaluate_proba
from pathnet_fer.experiments.folds import Fold, exclude_subjects, fixed_split_fold, subject_folds
from pathnet_fer.experiments.loggers import (
    ConsoleLogger,
    CSVLogger,
    LoggerGroup,
    RunKey,
    TensorBoardLogger,
)
from pathnet_fer.experiments.metrics_log import COLUMNS

ITERATION_READINGS = {
    "repeat": (
        "iteration = an independent repetition of the whole source -> destination protocol "
        "(own random initialisation, population and minibatch order; same folds)"
    ),
    "chained": (
        "iteration = one link of a chain: iteration 1 transfers source -> destination; "
        "iteration i+1 fixes iteration i's best destination path too and evolves the "
        "destination again (each iteration's destination is the next one's source); the "
        "scratch arm stays independent repetitions with the same budget"
    ),
}


class DataMissingError(FileNotFoundError):
    """A configured dataset is not where the config says; the message says what to get."""


# --------------------------------------------------------------------------- datasets
@dataclass
class LoadedDataset:
    """A dataset's face crops as model inputs, with what folds need."""

    name: str
    faces: Any  # FaceDataset
    x: np.ndarray  # float32 (n, D) in [0, 1]
    y: np.ndarray  # int64 (n,)
    subjects: np.ndarray
    clips: np.ndarray
    class_names: tuple[str, ...]

    @property
    def input_dim(self) -> int:
        return int(self.x.shape[1])


def net_config_for(config: ExperimentConfig, dataset: str, data: LoadedDataset) -> Any:
    """The super-network (a PathNetConfig) for a dataset's crops: input width from the
    data, and for conv modules the image shape (size x size x channels) from its face
    settings."""
    from pathnet_fer.pathnet import PathNetConfig

    extra = {}
    if config.pathnet.get("module") == "conv":
        faces = face_settings_for(config, dataset)
        channels = 3 if faces.colour == "rgb" else 1
        extra["image_shape"] = (int(faces.size), int(faces.size), channels)
    return PathNetConfig(input_dim=data.input_dim, **extra, **config.pathnet)


def face_settings_for(config: ExperimentConfig, dataset: str):
    """The dataset's FaceSettings: global ``faces`` merged with the dataset's overrides."""
    from pathnet_fer.faces.settings import FaceSettings

    return FaceSettings.from_dict({**config.faces, **config.datasets[dataset].faces})


def check_data(config: ExperimentConfig, names: list[str] | None = None) -> None:
    """Raise DataMissingError naming every missing dataset, what it is and where to put it."""
    from pathnet_fer.data.registry import get_adapter
    from pathnet_fer.paths import DATA_ENV

    missing = []
    for name in names or list(config.datasets):
        root = config.dataset_root(name)
        if not root.is_dir():
            adapter = get_adapter(config.datasets[name].adapter)
            missing.append(f"  - {name}: {adapter.description}\n    expected at {root}")
    if missing:
        raise DataMissingError(
            "dataset(s) not found:\n" + "\n".join(missing) + "\nObtain them and put each "
            f"folder there, or point the data root elsewhere (${DATA_ENV}, or --set "
            "data_root=DIR), or set a dataset's folder (--set datasets.NAME.root=DIR)."
        )


def load_dataset(
    config: ExperimentConfig, name: str, progress: bool = False, workers: int | None = None
) -> LoadedDataset:
    """Face crops of a configured dataset (from the cache when already preprocessed)."""
    from pathnet_fer.faces.preprocess import preprocess_dataset

    check_data(config, [name])
    spec = config.datasets[name]
    faces = preprocess_dataset(
        spec.adapter,
        config.dataset_root(name),
        settings=face_settings_for(config, name),
        cache_dir=config.cache_dir,
        workers=workers,
        keep_neutral=spec.keep_neutral,
        progress=progress,
    )
    if len(faces) == 0:
        raise ValueError(f"dataset {name!r} gave no face crops; see its manifest for reasons")
    return LoadedDataset(
        name=name,
        faces=faces,
        x=np.ascontiguousarray(faces.features()),
        y=np.asarray(faces.labels, dtype=np.int64),
        subjects=np.asarray(faces.subjects).astype(str),
        clips=np.asarray(faces.clips).astype(str),
        class_names=tuple(faces.class_names),
    )


def dataset_folds(config: ExperimentConfig, name: str, data: LoadedDataset) -> list[Fold]:
    """The folds of a dataset: by subject (default), by clip, or its fixed train/test split.

    Seeded by the config's seed only, so every arm and job sees the same folds.
    """
    spec = config.datasets[name]
    if spec.folds == "fixed":
        from pathnet_fer.data.registry import get_adapter

        samples = (
            get_adapter(spec.adapter)
            .scan(config.dataset_root(name), keep_neutral=spec.keep_neutral)
            .samples
        )
        split_of = dict(zip(samples["clip"].astype(str), samples["split"].astype(str), strict=True))
        return fixed_split_fold([split_of.get(c, "") for c in data.clips], data.subjects)
    groups = data.subjects if spec.folds == "subjects" else data.clips
    return subject_folds(
        groups, data.y, config.n_folds(name), seed=config.seed, stratify=config.protocol.stratify
    )


def fold_plan(
    config: ExperimentConfig, datasets: dict[str, LoadedDataset] | None = None
) -> pd.DataFrame:
    """Every set's destination folds: ``experiment, dataset, fold, subject, side, n_samples``.

    ``fold`` is 1-based as in metrics.csv. Baselines use the same plan to be comparable.
    """
    rows = []
    datasets = datasets or {}
    for s in config.sets:
        for role, name in (("destination", s.destination), ("source", s.source)):
            # Same dataset: the source task trains on the destination fold's training
            # subjects, so its plan is the destination's (listed again for audits).
            data = datasets.get(name) or load_dataset(config, name)
            datasets[name] = data
            for fold in dataset_folds(config, name, data):
                for side, index in (("train", fold.train_index), ("test", fold.test_index)):
                    counts = pd.Series(data.subjects[index]).value_counts()
                    rows += [
                        dict(
                            experiment=s.name,
                            role=role,
                            dataset=name,
                            fold=fold.index + 1,
                            subject=subj,
                            side=side,
                            n_samples=int(n),
                        )
                        for subj, n in sorted(counts.items())
                    ]
    return pd.DataFrame(
        rows, columns=["experiment", "role", "dataset", "fold", "subject", "side", "n_samples"]
    )


# --------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class RunSlot:
    """One run of the protocol: iteration and fold, both 1-based as in metrics.csv."""

    iteration: int
    fold: int


@dataclass(frozen=True)
class JobSpec:
    """A unit of work an executor runs: one arm chain of one set over some slots."""

    job_id: str
    experiment: str
    arm: str  # "transfer" (source, then destination with transfer) | "scratch"
    slots: tuple[RunSlot, ...]
    seed: int
    cost: float  # relative work (generations x runs), for scheduling longest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "experiment": self.experiment,
            "arm": self.arm,
            "slots": [[s.iteration, s.fold] for s in self.slots],
            "seed": self.seed,
            "cost": self.cost,
        }


def _stable_seed(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode()) % (2**31 - 1)


def _slug(text: str) -> str:
    from pathnet_fer.experiments.figures import slug

    return slug(text)


def plan_jobs(config: ExperimentConfig) -> list[JobSpec]:
    """Jobs for a config, longest first. ``executor.batch_runs``: one job per set and arm
    with all its runs batched; else one job per run. ``executor.cut``: see cuts.py."""
    if config.executor.cut is not None:
        from pathnet_fer.experiments.cuts import plan_cut_jobs

        return plan_cut_jobs(config)
    jobs = []
    p = config.protocol
    chained = p.iteration_mode == "chained"
    for s in config.sets:
        n_folds = config.n_folds(s.destination)
        all_slots = [
            RunSlot(i, k) for i in range(1, p.iterations + 1) for k in range(1, n_folds + 1)
        ]
        g_src, g_dst = config.generations("source"), config.generations("destination")
        for arm in ("transfer", "scratch"):
            if arm == "transfer" and chained:
                groups = [tuple(all_slots)]  # a chain needs every iteration of a fold in order
                if not config.executor.batch_runs:
                    groups = [
                        tuple(sl for sl in all_slots if sl.fold == k) for k in range(1, n_folds + 1)
                    ]
            elif config.executor.batch_runs:
                groups = [tuple(all_slots)]
            else:
                groups = [(sl,) for sl in all_slots]
            for group in groups:
                if arm == "transfer":
                    runs = len({sl.fold for sl in group}) if chained else len(group)
                    cost = runs * (g_src + g_dst * (p.iterations if chained else 1))
                else:
                    cost = len(group) * g_dst
                suffix = (
                    ""
                    if len(groups) == 1
                    else (
                        f"_it{group[0].iteration}_fold{group[0].fold}"
                        if len(group) == 1
                        else f"_fold{group[0].fold}"
                    )
                )
                job_id = f"{_slug(s.name)}__{arm}{suffix}"
                jobs.append(
                    JobSpec(
                        job_id=job_id,
                        experiment=s.name,
                        arm=arm,
                        slots=group,
                        seed=_stable_seed(config.seed, s.name, arm, suffix),
                        cost=float(cost),
                    )
                )
    return sorted(jobs, key=lambda j: -j.cost)


# --------------------------------------------------------------------------- phases
@dataclass
class RunData:
    """Train and held-out rows of one run of one task."""

    x: np.ndarray
    y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    test_clips: np.ndarray
    train_subjects: np.ndarray  # per training row (for audits: never in test_subjects)
    test_subjects: np.ndarray


@dataclass
class Phase:
    """One ``evolve`` call over the job's batched runs."""

    label: str  # file-safe, unique within the job
    arm: str
    task: str  # dataset name
    keys: list[RunKey]
    data: list[RunData]
    n_classes: int
    class_names: tuple[str, ...]
    generations: int
    seed: int
    fix_after: bool
    save_models: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _source_rows(
    config: ExperimentConfig,
    s: SetSpec,
    fold_index: int,
    src: LoadedDataset,
    dst_fold: Fold,
    src_folds: list[Fold] | None,
    seed: int,
) -> RunData:
    if s.source == s.destination:
        # Same dataset: the source never sees the destination fold's test subjects.
        train = exclude_subjects(src.subjects, dst_fold.test_subjects)
        test = dst_fold.test_index
    else:
        fold = src_folds[fold_index % len(src_folds)]
        train, test = fold.train_index, fold.test_index
    cap = config.protocol.max_source_frames
    if cap is not None and len(train) > cap:
        rng = np.random.default_rng(seed)
        train = np.sort(rng.choice(train, cap, replace=False))
    return RunData(
        src.x[train],
        src.y[train],
        src.x[test],
        src.y[test],
        src.clips[test],
        src.subjects[train],
        src.subjects[test],
    )


def _dest_rows(dst: LoadedDataset, fold: Fold) -> RunData:
    tr, te = fold.train_index, fold.test_index
    return RunData(
        dst.x[tr],
        dst.y[tr],
        dst.x[te],
        dst.y[te],
        dst.clips[te],
        dst.subjects[tr],
        dst.subjects[te],
    )


def build_phases(
    config: ExperimentConfig, job: JobSpec, datasets: dict[str, LoadedDataset]
) -> list[Phase]:
    """The evolve calls of a job, in order, with each run's data."""
    s = next(x for x in config.sets if x.name == job.experiment)
    dst = datasets[s.destination]
    src = datasets.get(s.source, dst if s.source == s.destination else None)
    if job.arm == "scratch":
        src = dst  # the scratch arm never touches the source dataset
    if src is None:
        raise ValueError(f"job {job.job_id}: source dataset {s.source!r} not loaded")
    if src.input_dim != dst.input_dim:
        raise ValueError(
            f"set {s.name!r}: source crops give {src.input_dim} features, destination "
            f"{dst.input_dim}; use the same faces.size and faces.colour for both datasets"
        )
    dst_folds = dataset_folds(config, s.destination, dst)
    src_folds = (
        None
        if s.source == s.destination or job.arm == "scratch"
        else dataset_folds(config, s.source, src)
    )
    chained = config.protocol.iteration_mode == "chained"
    g_src, g_dst = config.generations("source"), config.generations("destination")
    save = config.save_models != "none"

    def dest_phase(arm: str, slots, label: str, seed: int, fix_after: bool) -> Phase:
        return Phase(
            label=label,
            arm=arm,
            task=s.destination,
            keys=[RunKey(s.name, sl.iteration, sl.fold, s.destination, arm) for sl in slots],
            data=[_dest_rows(dst, dst_folds[sl.fold - 1]) for sl in slots],
            n_classes=len(dst.class_names),
            class_names=dst.class_names,
            generations=g_dst,
            seed=seed,
            fix_after=fix_after,
            save_models=save,
        )

    if job.arm == "scratch":
        return [dest_phase("scratch", job.slots, "scratch", job.seed + 2, False)]
    if chained:
        folds = sorted({sl.fold for sl in job.slots})
        src_slots = [RunSlot(1, k) for k in folds]
    else:
        src_slots = list(job.slots)
    source = Phase(
        label="source",
        arm="source",
        task=s.source,
        keys=[RunKey(s.name, sl.iteration, sl.fold, s.source, "source") for sl in src_slots],
        data=[
            _source_rows(
                config, s, sl.fold - 1, src, dst_folds[sl.fold - 1], src_folds, job.seed + sl.fold
            )
            for sl in src_slots
        ],
        n_classes=len(src.class_names),
        class_names=src.class_names,
        generations=g_src,
        seed=job.seed + 1,
        fix_after=True,
    )
    if not chained:
        return [source, dest_phase("transfer", job.slots, "transfer", job.seed + 2, False)]
    phases = [source]
    for it in range(1, config.protocol.iterations + 1):
        slots = [RunSlot(it, k) for k in folds]
        phases.append(
            dest_phase(
                "transfer",
                slots,
                f"transfer_it{it}",
                job.seed + 1 + it,
                it < config.protocol.iterations,
            )
        )
    return phases


# --------------------------------------------------------------------------- running a job
def _truncate_part(path: Path, generation: int, final_generation: int) -> None:
    """Drop rows written after the checkpoint a phase resumes from (they are redone)."""
    if not path.exists():
        return
    frame = pd.read_csv(path, dtype={"experiment": str, "task": str, "arm": str})
    gen = frame["generation"]
    per_generation = (frame["split"] == "train") & frame["metric"].isin(["accuracy", "loss"])
    # The final evaluation (test rows, train_seconds, parameters at the last generation)
    # is redone after a resume; periodic checks before the checkpoint are kept.
    keep = (gen < generation) | (
        (gen == generation) & (per_generation | (generation < final_generation))
    )
    frame[keep].to_csv(path, index=False, columns=list(COLUMNS))


def _evaluate(net, task, phase: Phase, paths, vote: str) -> list[Evaluation]:
    out = []
    for r, rd in enumerate(phase.data):
        proba = net.predict_proba(rd.test_x, task, run=r, path=paths[r]).cpu().numpy()
        out.append(evaluate_proba(proba, rd.test_y, rd.test_clips, phase.n_classes, vote))
    return out


class _Progress:
    """Per-job tqdm bar plus a small JSON file the coordinator reads for the overall bar."""

    def __init__(self, path: Path, total: int, desc: str, enabled: bool, position: int):
        from tqdm.auto import tqdm

        self.path, self.total, self.done = path, total, 0
        # Per-job bars only on a terminal: in logs, several processes' bars are noise.
        enabled = enabled and sys.stderr.isatty()
        self.bar = tqdm(
            total=total,
            desc=desc,
            unit="gen",
            disable=not enabled,
            position=position,
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=1.0,
        )
        self._last = 0.0

    def set(self, done: int) -> None:
        self.bar.update(done - self.done)
        self.done = done
        now = time.monotonic()
        if now - self._last > 0.5 or done >= self.total:
            self._last = now
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"done": done, "total": self.total}))
            tmp.replace(self.path)

    def close(self) -> None:
        self.bar.close()


def execute_job(
    job: JobSpec, config_dict: dict[str, Any], run_dir: str | Path, position: int = 0
) -> dict[str, Any]:
    """Run (or resume) one job; return its record. Writes only under ``run_dir``:
    ``parts/<job>/`` metrics and confusions, ``checkpoints/<job>/state.pt``,
    ``models/``, ``progress/<job>.json`` and finally ``jobs/<job>.json``."""
    import torch

    from pathnet_fer.evolution import EvolutionConfig, evolve, load_checkpoint, save_checkpoint
    from pathnet_fer.pathnet import PathNet

    config = build_config(config_dict)
    if config.executor.cut is not None:
        from pathnet_fer.experiments.cuts import execute_cut_job

        return execute_cut_job(job, config, config_dict, run_dir, position)
    run_dir = Path(run_dir)
    done_path = run_dir / "jobs" / f"{job.job_id}.json"
    if done_path.exists():
        return json.loads(done_path.read_text())
    parts = run_dir / "parts" / job.job_id
    parts.mkdir(parents=True, exist_ok=True)
    (run_dir / "progress").mkdir(exist_ok=True)
    state_path = run_dir / "checkpoints" / job.job_id / "state.pt"
    s = next(x for x in config.sets if x.name == job.experiment)
    names = [s.source, s.destination] if job.arm == "transfer" else [s.destination]
    datasets = {n: load_dataset(config, n) for n in dict.fromkeys(names)}
    phases = build_phases(config, job, datasets)
    runs = len(phases[0].keys)
    net_config = net_config_for(config, s.destination, datasets[s.destination])
    device = config.device
    start_phase, resume_task = 0, None
    if state_path.exists():
        net, resume_task, extra = load_checkpoint(
            state_path, device=device, expect_net_config=net_config, expect_runs=runs
        )
        if extra.get("job") != job.job_id:
            raise ValueError(
                f"{state_path} belongs to job {extra.get('job')!r}, not {job.job_id!r}"
            )
        start_phase = int(extra["phase"])
    else:
        net = PathNet(net_config, runs=runs, seed=job.seed, device=device)
    total = sum(ph.generations for ph in phases)
    progress = _Progress(
        run_dir / "progress" / f"{job.job_id}.json",
        total,
        f"{job.experiment} {job.arm} ({runs} runs)",
        config.logging.progress,
        position,
    )
    progress.set(
        sum(ph.generations for ph in phases[:start_phase])
        + (resume_task.generation if resume_task is not None else 0)
    )
    record: dict[str, Any] = {**job.to_dict(), "phases": [], "runs": runs}
    try:
        for i, phase in enumerate(phases):
            if i < start_phase:
                continue
            task = resume_task if i == start_phase else None
            if task is not None and task.name != phase.label:
                raise ValueError(
                    f"{state_path}: checkpoint holds task {task.name!r}, "
                    f"expected {phase.label!r}; delete it to restart this job"
                )
            record["phases"].append(
                _run_phase(
                    config,
                    job,
                    i,
                    phase,
                    net,
                    task,
                    parts,
                    state_path,
                    progress,
                    sum(ph.generations for ph in phases[:i]),
                    run_dir,
                    datasets,
                    evolve,
                    EvolutionConfig,
                    save_checkpoint,
                    torch,
                )
            )
            save_checkpoint(state_path, net, None, {"job": job.job_id, "phase": i + 1})
    finally:
        progress.close()
    done_path.parent.mkdir(exist_ok=True)
    tmp = done_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(done_path)
    return record


def _run_phase(
    config,
    job,
    index,
    phase: Phase,
    net,
    task,
    parts: Path,
    state_path: Path,
    progress: _Progress,
    offset: int,
    run_dir: Path,
    datasets,
    evolve,
    EvolutionConfig,
    save_checkpoint,
    torch,
) -> dict[str, Any]:
    from pathnet_fer.evolution import TaskData

    part = parts / f"{index:02d}_{phase.label}.csv"
    G = phase.generations
    if task is not None:
        _truncate_part(part, task.generation, G)
    elif part.exists():
        part.unlink()
    csv_logger = CSVLogger(part)
    loggers: list = [csv_logger]
    if config.logging.console_every > 0:
        loggers.append(ConsoleLogger(config.logging.console_every))
    if config.logging.tensorboard:
        loggers.append(TensorBoardLogger(run_dir / "tensorboard"))
    log = LoggerGroup(loggers)
    K = config.protocol.eval_every
    vote = config.protocol.clip_vote
    extra = {"job": job.job_id, "phase": index}
    every = config.executor.checkpoint_every
    rows = np.arange(len(phase.keys))

    def on_generation(event) -> None:
        g = event.generation
        acc = event.train_accuracy[rows, event.winner].tolist()
        loss = event.loss[rows, event.winner].tolist()
        for r, key in enumerate(phase.keys):
            log.log_values(key, g, "train", "minibatch", {"accuracy": acc[r], "loss": loss[r]})
        if g % K == 0 and g < G:
            paths = event.task.current_best_paths()
            for key, ev in zip(
                phase.keys, _evaluate(event.net, event.task, phase, paths, vote), strict=True
            ):
                for level, values in ev.by_level().items():
                    log.log_values(key, g, "test", level, values)
        if g % every == 0 or g == G:
            log.flush()  # metrics first: a checkpoint never runs ahead of its rows
            save_checkpoint(state_path, event.net, event.task, extra)
        progress.set(offset + g)

    evo = EvolutionConfig.from_dict({**config.evolution, "generations": G})
    data = [TaskData(rd.x, rd.y, name=phase.task) for rd in phase.data]
    task = evolve(
        net,
        data,
        phase.n_classes,
        config=evo,
        seed=phase.seed,
        callbacks=[on_generation],
        name=phase.label,
        task=task,
    )
    paths = task.best_paths
    evaluations = _evaluate(net, task, phase, paths, vote)
    confusion_rows = []
    seconds = task.elapsed_seconds / len(phase.keys)
    for r, (key, ev) in enumerate(zip(phase.keys, evaluations, strict=True)):
        for level, values in ev.by_level().items():
            log.log_values(key, task.generation, "test", level, values)
        params = sum(p.numel() for p in net.path_model(task, run=r).parameters())
        log.log_values(
            key,
            task.generation,
            "train",
            "minibatch",
            {"train_seconds": seconds, "parameters": float(params)},
        )
        for level, matrix in (("frame", ev.frame_confusion), ("clip", ev.clip_confusion)):
            for t, p in zip(*np.nonzero(matrix >= 0), strict=True):
                confusion_rows.append(
                    dict(
                        experiment=key.experiment,
                        arm=key.arm,
                        task=key.task,
                        iteration=key.iteration,
                        fold=key.fold,
                        level=level,
                        true=phase.class_names[t],
                        pred=phase.class_names[p],
                        count=int(matrix[t, p]),
                    )
                )
    log.close()
    pd.DataFrame(confusion_rows).to_csv(
        parts / f"{index:02d}_{phase.label}_confusion.csv", index=False
    )
    models = []
    if phase.save_models:
        models = _save_models(config, job, phase, net, task, run_dir, datasets)
    if phase.fix_after:
        net.fix(task)
    return {
        "phase": phase.label,
        "arm": phase.arm,
        "task": phase.task,
        "generations": task.generation,
        "seconds": task.elapsed_seconds,
        "best_fitness": [float(v) for v in task.best_fitness],
        "models": models,
    }


def _save_models(config, job, phase: Phase, net, task, run_dir: Path, datasets) -> list[str]:
    """Save the best path as a prediction model file (format owned by ``predict``)."""
    from pathnet_fer.predict.model_file import save_model

    fitness = task.best_fitness.cpu().numpy()
    runs = range(len(phase.keys)) if config.save_models == "all" else [int(fitness.argmax())]
    out = []
    for r in runs:
        key = phase.keys[r]
        name = (
            f"{phase.arm}_it{key.iteration}_fold{key.fold}.pt"
            if config.save_models == "all"
            else f"{phase.arm}_best.pt"
            if phase.label == phase.arm
            else f"{phase.label}_best.pt"
        )
        path = run_dir / "models" / _slug(key.experiment) / name
        save_model(
            path,
            net=net,
            task=task,
            run=r,
            class_names=list(phase.class_names),
            face_settings=face_settings_for(config, phase.task),
            dataset=phase.task,
            metadata={
                "experiment": key.experiment,
                "arm": key.arm,
                "iteration": key.iteration,
                "fold": key.fold,
                "selection": "highest training-selection accuracy of the "
                "final population's best path (no test data)",
                "train_selection_accuracy": float(fitness[r]),
                "job": job.job_id,
                "config": config.name,
                "test_subjects": sorted(set(phase.data[r].test_subjects)),
            },
        )
        out.append(str(path.relative_to(run_dir)))
    return out
