"""What an executor runs: ``execute_job(job, config, run_dir)``, routed to the
source driver (sources.py), the link driver (jobs.py), or a cut group's units one by one.

A job is a pure function of (config, job, run directory): any executor (local processes,
Dask) can run it, and it resumes from its own files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pathnet_fer.experiments.arms import arm_of
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.cuts import unit_config
from pathnet_fer.experiments.job_plan import units_of
from pathnet_fer.experiments.jobs import execute_link_job
from pathnet_fer.experiments.plan import JobSpec, batch_job_generations
from pathnet_fer.experiments.sources import execute_source_job


def execute_job(
    job: JobSpec, config: ExperimentConfig, run_dir: str | Path, position: int = 0
) -> dict[str, Any]:
    """Run (or resume) one job; return its record (``jobs/<job>.json``). ``config`` was
    built and checked once, by the coordinator (``config_loading``): a job never checks
    it again."""
    if arm_of(job.arm).shared_unit:
        return execute_source_job(job, config, run_dir, position)
    if config.executor.cut is not None:
        return _execute_cut_job(job, config, run_dir, position)
    return execute_link_job(job, config, Path(run_dir), position)


def _execute_cut_job(
    job, config: ExperimentConfig, run_dir: str | Path, position: int
) -> dict[str, Any]:
    """Run (or resume) each unit of ``job`` in turn; return the job's record."""
    run_dir = Path(run_dir)
    done_path = run_dir / "jobs" / f"{job.job_id}.json"
    if done_path.exists():
        return json.loads(done_path.read_text())
    unit_cfg = unit_config(config)
    units = units_of(job, config)
    if not units:
        raise ValueError(f"job {job.job_id}: no runs of this study match its slots")
    if [u.job_id for u in units] == [job.job_id]:
        return execute_job(units[0], unit_cfg, run_dir, position=position)
    records, done = [], 0
    progress = run_dir / "progress" / f"{job.job_id}.json"
    total = sum(batch_job_generations(unit_cfg, u) for u in units)
    for unit in units:
        records.append(execute_job(unit, unit_cfg, run_dir, position=position))
        done += batch_job_generations(unit_cfg, unit)
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
