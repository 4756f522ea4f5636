"""``executor.cut``: jobs cut per set and arm, per fold or per run, with the same results.

The default batched jobs (``executor.batch_runs``) evolve all folds x iterations of a set
and arm as the R runs of one PathNet: fast on one machine, but the runs share random
streams (initialisation, populations, minibatch order), so a run's numbers depend on the
batch it was in. With ``executor.cut`` set, every run is a *unit* that evolves alone
(a one-run PathNet) with a seed derived from its own identity only (config seed, set,
arm, iteration, fold: the ``batch_runs: false`` job of that run). A job is then a group of
units run one after another:

- ``run``: one job per unit (a chained transfer arm: one chain per fold is one unit),
- ``fold``: one job per set, arm and fold,
- ``set``: one job per set and arm.

Here only the plan: the units (the ``batch_runs: false`` jobs of ``unit_config``)
grouped into a cut's jobs, a pure JobSpec -> JobSpec transform (``job_plan.py`` plans the
units, ``execute.py`` runs a cut job unit by unit). Every unit writes its own ``parts/``, ``checkpoints/`` and ``jobs/<unit>.json`` exactly as
its ``run`` job would, so ``metrics.csv`` is the same whatever the cut (bit for bit: the
same one-run kernels), a killed group resumes unit by unit, and finished units are kept.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from pathnet_fer.experiments.arms import arm_of
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.plan import JobSpec, order_jobs, set_named
from pathnet_fer.names import slug


def unit_config(config: ExperimentConfig) -> ExperimentConfig:
    """The config a unit runs with: one run per job (``batch_runs: false``), no cut.

    ``save_models: best`` picks the best run of a batch; a unit holds one run, so every
    unit keeps its own model under an iteration/fold name (``all`` naming) instead.
    Derived from a checked config, so not checked again.
    """
    return replace(
        config,
        executor=replace(config.executor, cut=None, batch_runs=False),
        save_models="all" if config.save_models == "best" else config.save_models,
    )


def cut_jobs(units: list[JobSpec], cut: str, config: ExperimentConfig) -> list[JobSpec]:
    """The jobs of ``executor.cut`` made of a study's ``units``, sources first; each other
    job groups units (``units_in``)."""
    if cut == "run":
        return units
    groups: dict[tuple, list] = defaultdict(list)
    jobs = [u for u in units if arm_of(u.arm).shared_unit]  # one unit each, shared by sets
    for unit in units:
        if arm_of(unit.arm).shared_unit:
            continue
        fold = unit.slots[0].fold if cut == "fold" else None
        groups[(unit.experiment, unit.arm, unit.task, fold)].append(unit)
    for (experiment, arm, task, fold), members in groups.items():
        members.sort(key=lambda u: [(s.iteration, s.fold) for s in u.slots])
        suffix = "" if fold is None else f"_fold{fold}"
        # a chain's scratch jobs are one per link: name them by the link's dataset
        two_links = len(set_named(config, experiment).links) == 2
        link = arm if not arm_of(arm).one_link or two_links else f"{arm}_{slug(task)}"
        jobs.append(
            JobSpec(
                job_id=f"{slug(experiment)}__{link}{suffix}__{cut}",
                experiment=experiment,
                arm=arm,
                slots=tuple(s for u in members for s in u.slots),
                seed=members[0].seed,  # unused: each unit has its own
                cost=sum(u.cost for u in members),
                task=task,
                after=tuple(dict.fromkeys(a for u in members for a in u.after)),
            )
        )
    return order_jobs(jobs)


def units_in(job: JobSpec, units: list[JobSpec]) -> list[JobSpec]:
    """The units a cut job holds (the units whose runs are the job's), in order."""
    slots = set(job.slots)
    return [
        u
        for u in units
        if (u.experiment, u.arm, u.task) == (job.experiment, job.arm, job.task)
        and set(u.slots) <= slots
    ]
