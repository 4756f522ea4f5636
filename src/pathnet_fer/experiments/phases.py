"""The evolve calls of a job (phases) and each run's rows: what a job does, as data.

A transfer job's phases are links 2..k of its set's chain, in order (each link's best
path fixed before the next); a scratch job's one phase is one link from a fresh network;
a source job's one phase is its source unit. Rows are index views of the loaded datasets
chosen by fold: which subjects a run trains and is tested on is decided here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pathnet_fer.datasets.folds import exclude_subjects
from pathnet_fer.datasets.loading import LoadedDataset, member_rows
from pathnet_fer.experiments.arms import arm_of
from pathnet_fer.experiments.config import ExperimentConfig, SetSpec
from pathnet_fer.experiments.datasets import dataset_folds
from pathnet_fer.experiments.loggers import RunKey
from pathnet_fer.experiments.plan import JobSpec, RunSlot, link_fold, set_named, source_job

SOURCE_EXPERIMENT = "(source)"  # placeholder experiment of a source unit's own rows


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
    train_index: np.ndarray
    test_index: np.ndarray
    targets: np.ndarray | None = None  # soft targets of the training rows (soft_labels)


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


def rows(data: LoadedDataset, train: np.ndarray, test: np.ndarray) -> RunData:
    return RunData(
        data.x[train],
        data.y[train],
        data.x[test],
        data.y[test],
        data.clips[test],
        data.subjects[train],
        data.subjects[test],
        np.asarray(train),
        np.asarray(test),
        None if data.targets is None else data.targets[train],
    )


def link_rows(config: ExperimentConfig, data: LoadedDataset, fold: int) -> RunData:
    """A link's rows in destination fold ``fold`` (1-based): its dataset's matching fold.
    Fold 0 (the final fit): every row trains; the "test" rows are the training rows (no
    held-out figure exists for a model fitted on everyone)."""
    if fold == 0:
        every = np.arange(len(data.y))
        return rows(data, every, every)
    folds = dataset_folds(config, data.name, data)
    f = folds[link_fold(config, data.name, fold) - 1]
    return rows(data, f.train_index, f.test_index)


def source_rows(config: ExperimentConfig, job: JobSpec, data: LoadedDataset) -> RunData:
    """A source unit's rows: its dataset's fold ``job.slots[0].fold``, training side (with
    ``heldout``: every subject but the fold's test subjects), capped by
    ``protocol.max_source_frames`` with a subsample seeded by the unit."""
    return rows(data, *source_index(config, job, data))


def source_index(
    config: ExperimentConfig, job: JobSpec, data: LoadedDataset
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices of a source unit (see ``source_rows``)."""
    if job.slots[0].fold == 0:  # the final fit's source: every subject, no held-out side
        train = test = np.arange(len(data.y))
    else:
        fold = dataset_folds(config, data.name, data)[job.slots[0].fold - 1]
        test = fold.test_index
        train = (
            exclude_subjects(data.subjects, fold.test_subjects) if job.heldout else fold.train_index
        )
    cap = config.protocol.max_source_frames
    if cap is not None and len(train) > cap:
        train = np.sort(np.random.default_rng(job.seed).choice(train, cap, replace=False))
    return train, test


def source_phase(config: ExperimentConfig, job: JobSpec, data: LoadedDataset) -> Phase:
    slot = job.slots[0]
    return Phase(
        label="source",
        arm="source",
        task=job.task,
        keys=[RunKey(SOURCE_EXPERIMENT, slot.iteration, slot.fold, job.task, "source")],
        data=[source_rows(config, job, data)],
        n_classes=len(data.class_names),
        class_names=data.class_names,
        generations=config.generations("source"),
        seed=job.seed + 1,
        fix_after=True,
    )


def build_phases(
    config: ExperimentConfig, job: JobSpec, datasets: dict[str, LoadedDataset]
) -> list[Phase]:
    """The evolve calls of a transfer or scratch job, in order, with each run's rows."""
    s = set_named(config, job.experiment)
    g_dst = config.generations("destination")
    save = config.save_models != "none"

    def link_phase(task: str, arm: str, slots, label: str, seed: int, fix_after: bool) -> Phase:
        data = datasets[task]
        return Phase(
            label=label,
            arm=arm,
            task=task,
            keys=[RunKey(s.name, sl.iteration, sl.fold, task, arm) for sl in slots],
            data=[link_rows(config, data, sl.fold) for sl in slots],
            n_classes=len(data.class_names),
            class_names=data.class_names,
            generations=g_dst,
            seed=seed,
            fix_after=fix_after,
            save_models=save and task == s.destination,
        )

    arm = arm_of(job.arm)
    if arm.one_link:
        return [link_phase(job.task, arm.name, job.slots, arm.name, job.seed + 2, False)]
    if not arm.from_source:
        raise ValueError(f"job {job.job_id}: no phases for arm {job.arm!r}")
    links = s.links
    if not arm.holds_out:
        phases = [
            link_phase(links[j], "final", job.slots, f"final_link{j + 1}", job.seed + 1 + j,
                       j < len(links) - 1)
            for j in range(1, len(links))
        ]  # fmt: skip
        for ph in phases:
            ph.save_models = ph.task == s.destination and ph is phases[-1]
        return _with_trained_on(config, s, job, phases, datasets)
    if config.protocol.iteration_mode == "chained":
        folds = sorted({sl.fold for sl in job.slots})
        last = config.protocol.iterations
        return [
            link_phase(
                links[1],
                "transfer",
                [RunSlot(it, k) for k in folds],
                f"transfer_it{it}",
                job.seed + 1 + it,
                it < last,
            )
            for it in range(1, last + 1)
        ]
    phases = [
        link_phase(
            links[j],
            "transfer",
            job.slots,
            "transfer" if len(links) == 2 else f"link{j + 1}",
            job.seed + 1 + j,
            j < len(links) - 1,
        )
        for j in range(1, len(links))
    ]
    return _with_trained_on(config, s, job, phases, datasets)


def _with_trained_on(
    config: ExperimentConfig,
    s: SetSpec,
    job: JobSpec,
    phases: list[Phase],
    datasets: dict[str, LoadedDataset],
) -> list[Phase]:
    """Each run's model learnt its source unit and every link before it too: what its
    file says (``extra["trained_on"][run]``), without copying a row."""
    data = datasets[s.links[0]]
    trained_on = {}
    for r, slot in enumerate(job.slots):
        train, _ = source_index(config, source_job(config, s, slot), data)
        trained_on[r] = [describe_rows(config, s.links[0], data.subjects[train])] + [
            describe_rows(config, ph.task, ph.data[r].train_subjects) for ph in phases
        ]
    phases[-1].extra["trained_on"] = trained_on
    return phases


def describe_rows(
    config: ExperimentConfig, dataset: str, train_subjects: np.ndarray
) -> dict[str, Any]:
    """What a model was trained on (the subject of each training row), for its file
    (``predict --info``, and ``evaluate``'s note on faces a model has seen): the dataset,
    its adapters and, for a union, the faces of each member."""
    members = config.members(dataset)
    subjects = np.asarray(train_subjects).astype(str)
    out = {
        "dataset": dataset,
        "faces": int(len(subjects)),
        "subjects": int(len(set(subjects))),
        "adapters": sorted({config.datasets[m].adapter for m in members}),
    }
    if config.datasets[dataset].union:
        out["members"] = {m: int(member_rows(subjects, m).sum()) for m in members}
    return out


def run_slots(config: ExperimentConfig, job: JobSpec) -> list[RunSlot]:
    """The slot of each run of a transfer job's net (chained: one run per fold)."""
    if config.protocol.iteration_mode == "chained":
        return [RunSlot(1, k) for k in sorted({sl.fold for sl in job.slots})]
    return list(job.slots)
