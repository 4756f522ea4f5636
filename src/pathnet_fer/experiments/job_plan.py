"""A study's jobs, with or without ``executor.cut``: the one planner the coordinator, the
jobs and the config checks ask.

Without a cut: ``plan.plan_batch_jobs``. With one: the units (the study planned with
``cuts.unit_config``: one run per job) grouped by ``cuts.cut_jobs``.
"""

from __future__ import annotations

from pathnet_fer.experiments.arms import arm_of
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.cuts import cut_jobs, unit_config, units_in
from pathnet_fer.experiments.plan import JobSpec, batch_job_generations, plan_batch_jobs


def plan_jobs(config: ExperimentConfig) -> list[JobSpec]:
    """Every job of a study, in the order they should start."""
    if config.executor.cut is None:
        return plan_batch_jobs(config)
    return cut_jobs(plan_batch_jobs(unit_config(config)), config.executor.cut, config)


def units_of(job: JobSpec, config: ExperimentConfig) -> list[JobSpec]:
    """The units a cut job holds, in order."""
    return units_in(job, plan_batch_jobs(unit_config(config)))


def job_generations(config: ExperimentConfig, job: JobSpec) -> int:
    """Generations one run of a job evolves (for progress bars); a cut group: its units'
    one after another."""
    if config.executor.cut not in (None, "run") and not arm_of(job.arm).shared_unit:
        units = unit_config(config)
        return sum(batch_job_generations(units, u) for u in units_in(job, plan_batch_jobs(units)))
    return batch_job_generations(config, job)
