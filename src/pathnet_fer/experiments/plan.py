"""The job plan of a study: which evolve work exists, in which jobs, after which.

A set is a chain of datasets ``[d1, d2, ..., dk]`` (``source -> destination`` is k = 2).
Per iteration and destination fold (a *slot*):

- **source** (link 1): evolved once per *source unit* (dataset, the rows it trains on,
  iteration) and shared by every slot, set and study that names the same unit. A source on
  another dataset trains on that dataset's fold ``(k - 1) mod n`` (one fold for a fixed
  split like FER-2013: the same source for all destination folds); a source whose dataset
  comes again later in the chain never sees that fold's test subjects. Each unit is its own
  job, seeded by its identity only, and leaves a content-addressed artifact (sources.py).
- **transfer**: loads its slots' sources, then evolves links 2..k in order, fixing each
  link's best path before the next; needs its source jobs done first (``after``).
- **scratch**: every link after the first, from a fresh network with the same budget.

By default a set's transfer (and each link's scratch) runs batch all slots as the R runs
of one PathNet (``executor.batch_runs``); ``executor.cut`` cuts them finer (cuts.py).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from pathnet_fer.experiments.arms import arm_of
from pathnet_fer.experiments.config import ExperimentConfig, SetSpec
from pathnet_fer.names import slug

ITERATION_READINGS = {
    "repeat": (
        "iteration = an independent repetition of the whole chain (own random "
        "initialisation, population and minibatch order; same folds); the source of each "
        "iteration is trained once and shared by every fold and set that names it"
    ),
    "chained": (
        "iteration = one link of a chain: iteration 1 transfers source -> destination; "
        "iteration i+1 fixes iteration i's best destination path too and evolves the "
        "destination again (each iteration's destination is the next one's source); the "
        "scratch arm stays independent repetitions with the same budget"
    ),
}


@dataclass(frozen=True)
class RunSlot:
    """One run of the protocol: iteration and fold, both 1-based as in metrics.csv."""

    iteration: int
    fold: int


@dataclass(frozen=True)
class JobSpec:
    """A unit of work an executor runs.

    ``arm``: ``source`` (one source unit: ``task`` on its fold ``slots[0].fold``),
    ``transfer`` (links 2..k of set ``experiment``), ``scratch`` (link ``task`` alone) or
    ``final`` (the transfer arm once more on every subject: fold 0, the deployed model).
    ``after``: job ids that must be finished first (the sources a transfer job loads).
    """

    job_id: str
    experiment: str
    arm: str
    slots: tuple[RunSlot, ...]
    seed: int
    cost: float  # relative work (generations x runs), for scheduling longest first
    task: str = ""  # the dataset a source or scratch job evolves
    after: tuple[str, ...] = ()
    heldout: bool = False  # source only: never train on its fold's test subjects

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "experiment": self.experiment,
            "arm": self.arm,
            "task": self.task,
            "slots": [[s.iteration, s.fold] for s in self.slots],
            "seed": self.seed,
            "cost": self.cost,
            "after": list(self.after),
            "heldout": self.heldout,
        }


def stable_seed(*parts: object) -> int:
    """A seed from an identity (the same on every machine and Python run)."""
    return zlib.crc32("|".join(map(str, parts)).encode()) % (2**31 - 1)


def set_named(config: ExperimentConfig, name: str) -> SetSpec:
    for s in config.sets:
        if s.name == name:
            return s
    raise ValueError(f"the config has no experiment set {name!r}")


def link_fold(config: ExperimentConfig, dataset: str, fold: int) -> int:
    """The fold (1-based) of ``dataset`` a link uses in destination fold ``fold``."""
    return (fold - 1) % config.n_folds(dataset) + 1


def source_job(config: ExperimentConfig, s: SetSpec, slot: RunSlot) -> JobSpec:
    """The source unit a slot of set ``s`` transfers from (its job). Fold 0 (the final
    fit) trains on every subject; on a fixed split that is the training split, the unit
    the folds already use."""
    dataset = s.links[0]
    # Folds by subject already keep a fold's test subjects out of its training side; only
    # folds by clip need the subjects excluded when the dataset comes again in the chain.
    heldout = dataset in s.links[1:] and config.datasets[dataset].folds == "clips"
    iteration = 1 if config.protocol.iteration_mode == "chained" else slot.iteration
    if slot.fold == 0 and config.n_folds(dataset) > 1:
        fold, name, heldout = 0, "all", False
    else:
        fold = link_fold(config, dataset, max(slot.fold, 1))
        name = f"{'heldout-' if heldout else ''}fold{fold}"
    return JobSpec(
        job_id=f"source__{slug(dataset)}__{name}__it{iteration}",
        experiment="",
        arm="source",
        slots=(RunSlot(iteration, fold),),
        seed=stable_seed(config.seed, "source", dataset, name, iteration),
        cost=float(config.generations("source")),
        task=dataset,
        heldout=heldout,
    )


def users_of(config: ExperimentConfig, source: JobSpec) -> list[str]:
    """The sets whose transfer runs load this source unit (where its rows are reported)."""
    out = []
    for s in config.sets:
        slots = set_slots(config, s)
        if any(source_job(config, s, sl).job_id == source.job_id for sl in slots):
            out.append(s.name)
    return out


def set_slots(config: ExperimentConfig, s: SetSpec) -> list[RunSlot]:
    n_folds = config.n_folds(s.destination)
    return [
        RunSlot(i, k)
        for i in range(1, config.protocol.iterations + 1)
        for k in range(1, n_folds + 1)
    ]


def _groups(config: ExperimentConfig, slots: list[RunSlot], arm: str) -> list[tuple[RunSlot, ...]]:
    chained = config.protocol.iteration_mode == "chained"
    if arm_of(arm).chains_folds and chained:
        if config.executor.batch_runs:
            return [tuple(slots)]  # a chain needs every iteration of a fold in order
        folds = sorted({sl.fold for sl in slots})
        return [tuple(sl for sl in slots if sl.fold == k) for k in folds]
    if config.executor.batch_runs:
        return [tuple(slots)]
    return [(sl,) for sl in slots]


def _suffix(groups: list[tuple[RunSlot, ...]], group: tuple[RunSlot, ...]) -> str:
    if len(groups) == 1:
        return ""
    if len(group) == 1:
        return f"_it{group[0].iteration}_fold{group[0].fold}"
    return f"_fold{group[0].fold}"


def plan_batch_jobs(config: ExperimentConfig) -> list[JobSpec]:
    """Jobs for a config without a cut, longest first (sources before the transfers that
    need them); ``job_plan.plan_jobs`` adds ``executor.cut``."""
    p = config.protocol
    chained = p.iteration_mode == "chained"
    g_dst = config.generations("destination")
    sources: dict[str, JobSpec] = {}
    jobs: list[JobSpec] = []
    for s in config.sets:
        slots = set_slots(config, s)
        links = s.links
        for group in _groups(config, slots, "transfer"):
            after = []
            for sl in group:
                src = source_job(config, s, sl)
                sources.setdefault(src.job_id, src)
                after.append(src.job_id)
            runs = len({sl.fold for sl in group}) if chained else len(group)
            steps = p.iterations if chained else len(links) - 1
            suffix = _suffix(_groups(config, slots, "transfer"), group)
            jobs.append(
                JobSpec(
                    job_id=f"{slug(s.name)}__transfer{suffix}",
                    experiment=s.name,
                    arm="transfer",
                    slots=group,
                    seed=stable_seed(config.seed, s.name, "transfer", suffix),
                    cost=float(runs * g_dst * steps),
                    after=tuple(dict.fromkeys(after)),
                )
            )
        if p.final_fit and config.save_models != "none":  # it exists for its model
            src = source_job(config, s, RunSlot(1, 0))
            sources.setdefault(src.job_id, src)
            steps = p.iterations if chained else len(links) - 1
            jobs.append(
                JobSpec(
                    job_id=f"{slug(s.name)}__final",
                    experiment=s.name,
                    arm="final",
                    slots=(RunSlot(1, 0),),
                    seed=stable_seed(config.seed, s.name, "final"),
                    cost=float(g_dst * steps),
                    after=(src.job_id,),
                )
            )
        for j in range(1, len(links)):
            link = "" if len(links) == 2 else f"_link{j + 1}"
            groups = _groups(config, slots, "scratch")
            for group in groups:
                suffix = _suffix(groups, group)
                jobs.append(
                    JobSpec(
                        job_id=f"{slug(s.name)}__scratch{link}{suffix}",
                        experiment=s.name,
                        arm="scratch",
                        slots=group,
                        # two-link sets keep the seed they always had
                        seed=stable_seed(config.seed, s.name, f"scratch{link}", suffix),
                        cost=float(len(group) * g_dst),
                        task=links[j],
                    )
                )
    return order_jobs(list(sources.values()) + jobs)


def order_jobs(jobs: list[JobSpec]) -> list[JobSpec]:
    """Longest path first: a job's priority is its cost plus the largest priority among
    the jobs that need it (so a short source that unblocks a long transfer goes first),
    and a job never comes before a job it needs."""
    needed_by: dict[str, list[JobSpec]] = {}
    for job in jobs:
        for a in job.after:
            needed_by.setdefault(a, []).append(job)
    memo: dict[str, float] = {}

    def priority(job: JobSpec) -> float:
        if job.job_id not in memo:
            memo[job.job_id] = job.cost + max(
                (priority(d) for d in needed_by.get(job.job_id, [])), default=0.0
            )
        return memo[job.job_id]

    pending = sorted(jobs, key=lambda j: (-priority(j), j.job_id))
    placed: set[str] = set()
    out: list[JobSpec] = []
    while pending:
        for i, job in enumerate(pending):
            if all(a in placed for a in job.after):
                out.append(pending.pop(i))
                placed.add(job.job_id)
                break
        else:
            missing = {a for j in pending for a in j.after} - placed
            raise ValueError(f"jobs need jobs that are not planned: {sorted(missing)}")
    return out


def batch_job_generations(config: ExperimentConfig, job: JobSpec) -> int:
    """Generations one run of a job that is not a cut group evolves (progress bars)."""
    arm = arm_of(job.arm)
    if arm.shared_unit:
        return config.generations("source")
    g_dst = config.generations("destination")
    if arm.one_link:
        return g_dst
    if config.protocol.iteration_mode == "chained":
        return g_dst * config.protocol.iterations
    return g_dst * (len(set_named(config, job.experiment).links) - 1)  # transfer, final
