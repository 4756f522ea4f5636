"""Run a plan's jobs through an executor, each once every job it needs has finished.

Shared by a study (``runner.py``) and the baselines (``baselines/runner.py``): the same
dependency order, the same failure rule (a job whose prerequisite failed is not run and
counts as failed), the same executors.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pathnet_fer.experiments.executor import Executor


class Job(Protocol):
    """What the scheduler reads of a job: its id and the ids of the jobs it needs."""

    job_id: str
    after: tuple[str, ...]


def run_jobs(
    executor: Executor,
    todo: Sequence[Job],
    config: Any,
    run_dir: str,
    done_ids: set[str],
    log: Callable[[str], None],
    on_done: Callable[[Any, Any], None],
    on_tick: Callable[[], None] = lambda: None,
    detail: Callable[[str], None] | None = None,
) -> list[str]:
    """Submit every job of ``todo`` once all its ``after`` ids are in ``done_ids``; call
    ``on_done(job, record)`` for each that finishes (in the order they finish) and
    ``on_tick()`` about once a second. Returns the ids of the jobs that failed or could not
    run; a job's exception is logged (its traceback to ``detail``), never raised."""
    failed: list[str] = []
    waiting = list(todo)

    def submit_ready() -> None:
        for job in list(waiting):
            if any(a in failed for a in job.after):
                waiting.remove(job)
                failed.append(job.job_id)
                need = ", ".join(a for a in job.after if a in failed)
                log(f"job {job.job_id} NOT RUN: it needs {need}, which failed")
            elif all(a in done_ids for a in job.after):
                waiting.remove(job)
                executor.submit(job, config, run_dir)

    submit_ready()
    while executor.pending or waiting:
        if not executor.pending:
            raise RuntimeError(f"jobs wait on jobs that never run: {waiting}")
        for job, result in executor.results(timeout=1.0):
            if isinstance(result, BaseException):
                failed.append(job.job_id)
                log(f"job {job.job_id} FAILED: {type(result).__name__}: {result}")
                if detail is not None:
                    detail("".join(traceback.format_exception(result)))
            else:
                done_ids.add(job.job_id)
                on_done(job, result)
        submit_ready()
        on_tick()
    return failed
