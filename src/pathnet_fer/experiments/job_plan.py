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


def job_generations(config: ExperimentConfig, jobs: list[JobSpec]) -> dict[str, int]:
    """Generations one run of each job evolves (for progress bars), by job id; a cut
    group: its units' one after another (the units planned once for all the jobs)."""
    if config.executor.cut in (None, "run"):
        return {j.job_id: batch_job_generations(config, j) for j in jobs}
    units_config = unit_config(config)
    units = plan_batch_jobs(units_config)
    return {
        j.job_id: batch_job_generations(config, j)
        if arm_of(j.arm).shared_unit
        else sum(batch_job_generations(units_config, u) for u in units_in(j, units))
        for j in jobs
    }
