"""The executor a config names (``executor.kind``): inline, local processes, or Dask.

Kept apart from the executors themselves so that the base class knows none of its kinds
(``dask_executor`` builds on ``executor``; importing it starts nothing: Dask itself is
imported when a Dask executor starts).
"""

from __future__ import annotations

import os

from pathnet_fer.experiments.dask_executor import DaskExecutor
from pathnet_fer.experiments.execute import execute_job
from pathnet_fer.experiments.executor import Executor, InlineExecutor, JobFunction, LocalExecutor


def make_executor(
    kind: str,
    workers: int = 0,
    threads: int = 1,
    n_jobs: int | None = None,
    job_function: JobFunction = execute_job,
) -> Executor:
    """The executor a config names (``executor.kind``), calling ``job_function`` per job."""
    if kind == "inline":
        return InlineExecutor(job_function)
    if kind == "local":
        if n_jobs is not None:
            wanted = workers if workers > 0 else len(os.sched_getaffinity(0))
            if min(wanted, n_jobs) <= 1:
                return InlineExecutor(job_function)  # one job: no process start-up cost
            workers = min(wanted, n_jobs)
        return LocalExecutor(workers, threads, job_function)
    if kind == "dask":
        return DaskExecutor(
            workers=workers, threads=threads, n_jobs=n_jobs, job_function=job_function
        )
    raise ValueError(f"unknown executor kind {kind!r} (available: local, inline, dask)")
