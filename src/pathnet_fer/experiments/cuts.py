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

Every unit writes its own ``parts/``, ``checkpoints/`` and ``jobs/<unit>.json`` exactly as
its ``run`` job would, so ``metrics.csv`` is the same whatever the cut (bit for bit: the
same one-run kernels), a killed group resumes unit by unit, and finished units are kept.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pathnet_fer.experiments.config import ExperimentConfig


def unit_config_dict(config_dict: dict[str, Any]) -> dict[str, Any]:
    """The config a unit runs with: one run per job (``batch_runs: false``), no cut.

    ``save_models: best`` picks the best run of a batch; a unit holds one run, so every
    unit keeps its own model under an iteration/fold name (``all`` naming) instead.
    """
    out = {**config_dict, "executor": {**config_dict["executor"], "cut": None}}
    out["executor"]["batch_runs"] = False
    if out.get("save_models") == "best":
        out["save_models"] = "all"
    return out


def plan_units(config: ExperimentConfig):
    """The units of a study: its ``batch_runs: false`` jobs (sources are units already)."""
    from pathnet_fer.experiments.plan import plan_jobs

    return plan_jobs(_unit_config(config))


def plan_cut_jobs(config: ExperimentConfig):
    """Jobs of ``executor.cut``, sources first; each other job groups units (``units_of``)."""
    from pathnet_fer.experiments.names import slug
    from pathnet_fer.experiments.plan import JobSpec, order_jobs, set_named

    cut = config.executor.cut
    units = plan_units(config)
    if cut == "run":
        return units
    groups: dict[tuple, list] = defaultdict(list)
    jobs = [u for u in units if u.arm == "source"]  # one unit each, shared by sets
    for unit in units:
        if unit.arm == "source":
            continue
        fold = unit.slots[0].fold if cut == "fold" else None
        groups[(unit.experiment, unit.arm, unit.task, fold)].append(unit)
    for (experiment, arm, task, fold), members in groups.items():
        members.sort(key=lambda u: [(s.iteration, s.fold) for s in u.slots])
        suffix = "" if fold is None else f"_fold{fold}"
        # a chain's scratch jobs are one per link: name them by the link's dataset
        two_links = len(set_named(config, experiment).links) == 2
        link = arm if arm != "scratch" or two_links else f"scratch_{slug(task)}"
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


def units_of(job, config: ExperimentConfig) -> list:
    """The units a cut job holds (the units whose runs are the job's), in order."""
    slots = set(job.slots)
    return [
        u
        for u in plan_units(config)
        if u.experiment == job.experiment
        and u.arm == job.arm
        and u.task == job.task
        and set(u.slots) <= slots
    ]


def _unit_total(config: ExperimentConfig, unit) -> int:
    from pathnet_fer.experiments.plan import job_generations

    return job_generations(_unit_config(config), unit)


def _unit_config(config: ExperimentConfig) -> ExperimentConfig:
    from pathnet_fer.experiments.config import build_config

    return build_config(unit_config_dict(config.to_dict()))


def cut_job_total(config: ExperimentConfig, job) -> int:
    """Generations a cut job evolves: its units' one after another."""
    return sum(_unit_total(config, u) for u in units_of(job, config))


def execute_cut_job(
    job, config: ExperimentConfig, config_dict: dict[str, Any], run_dir: str | Path, position: int
) -> dict[str, Any]:
    """Run (or resume) each unit of ``job`` in turn; return the job's record."""
    from pathnet_fer.experiments.jobs import execute_job

    run_dir = Path(run_dir)
    done_path = run_dir / "jobs" / f"{job.job_id}.json"
    if done_path.exists():
        return json.loads(done_path.read_text())
    unit_dict = unit_config_dict(config_dict)
    units = units_of(job, config)
    if not units:
        raise ValueError(f"job {job.job_id}: no runs of this study match its slots")
    if [u.job_id for u in units] == [job.job_id]:
        return execute_job(units[0], unit_dict, run_dir, position=position)
    records, done = [], 0
    progress = run_dir / "progress" / f"{job.job_id}.json"
    total = sum(_unit_total(config, u) for u in units)
    for unit in units:
        records.append(execute_job(unit, unit_dict, run_dir, position=position))
        done += _unit_total(config, unit)
        # The coordinator's overall bar reads the job's progress (units report their own).
        tmp = progress.with_suffix(".tmp")
        tmp.write_text(json.dumps({"done": done, "total": total}))
        tmp.replace(progress)
    record = {
        **job.to_dict(),
        "units": [u.job_id for u in units],
        "phases": [p for r in records for p in r["phases"]],
        "runs": sum(r["runs"] for r in records),
    }
    tmp = done_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(done_path)
    return record
