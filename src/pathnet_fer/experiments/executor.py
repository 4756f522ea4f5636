"""Executors: where protocol jobs run. The protocol only submits jobs and collects results.

A job is ``job_function(job, config, run_dir, position=...)``: picklable inputs, results on
disk under the run directory or returned (a study's job resumes from its own checkpoint; a
baseline job, one arm of one run, is redone). The function is a study's
``execute_job`` by default, the baselines' ``execute_baseline_job`` for theirs: any module-level
function of that signature, whose job has a ``job_id`` and a ``cost``. Any backend that can
call a function somewhere with access to the run directory can run it:

- :class:`InlineExecutor`: in this process, one job after another (debugging, tests).
- :class:`LocalExecutor`: a pool of worker processes (one per core by default), each with
  ``threads`` torch threads, so small batched matmuls keep every core busy.
- :class:`~pathnet_fer.experiments.dask_executor.DaskExecutor` (``kind: dask``): the same
  three methods on a Dask distributed cluster (docs/cluster.md).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any

from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.execute import execute_job
from pathnet_fer.experiments.plan import JobSpec
from pathnet_fer.parent_watch import exit_with_parent

JobFunction = Callable[..., Any]
"""``fn(job, config, run_dir, position=1) -> record``: what an executor calls for a job."""


class Executor(ABC):
    """Submit jobs, then collect ``(job, record | exception)`` as they finish."""

    job_function: JobFunction = staticmethod(execute_job)

    @abstractmethod
    def submit(self, job: JobSpec, config: ExperimentConfig, run_dir: str) -> None: ...

    @abstractmethod
    def results(self, timeout: float | None = None) -> Iterator[tuple[JobSpec, Any]]:
        """Yield finished jobs; return after ``timeout`` seconds without one (to let the
        caller refresh progress), or when nothing is pending."""

    @property
    @abstractmethod
    def pending(self) -> int: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers."""

    def attach_log(self, log: Any) -> None:  # noqa: B027 - optional hook
        """Lines the executor has to say (e.g. a lost worker) go to ``log`` (the run log)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InlineExecutor(Executor):
    """Run each job in this process when results are collected."""

    def __init__(self, job_function: JobFunction = execute_job) -> None:
        self.job_function = job_function
        self._queue: list[tuple[JobSpec, dict[str, Any], str]] = []

    def submit(self, job: JobSpec, config: ExperimentConfig, run_dir: str) -> None:
        self._queue.append((job, config, run_dir))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def results(self, timeout: float | None = None) -> Iterator[tuple[JobSpec, Any]]:
        import torch

        while self._queue:
            job, config, run_dir = self._queue.pop(0)
            threads = torch.get_num_threads()
            # Small batched matmuls: one thread is faster than two fighting for cores.
            torch.set_num_threads(int(config.executor.threads))
            try:
                yield job, self.job_function(job, config, run_dir, position=1)
            except Exception as err:  # noqa: BLE001 - reported by the coordinator
                yield job, err
            finally:
                torch.set_num_threads(threads)


def _init_worker(threads: int) -> None:
    import torch

    exit_with_parent()  # an orphan never writes into a run a resumed command owns

    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def _run(
    job_function: JobFunction, job: JobSpec, config: ExperimentConfig, run_dir: str, slots: int
) -> dict[str, Any]:
    from multiprocessing import current_process

    identity = current_process()._identity
    position = 1 + ((identity[0] - 1) % slots if identity else 0)
    return job_function(job, config, run_dir, position=position)


class LocalExecutor(Executor):
    """A pool of ``workers`` processes (spawned: safe with torch/OpenMP state)."""

    def __init__(
        self, workers: int = 0, threads: int = 1, job_function: JobFunction = execute_job
    ) -> None:
        self.job_function = job_function
        self.workers = workers if workers > 0 else max(1, len(os.sched_getaffinity(0)))
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads,),
        )
        self._futures: dict[Future, JobSpec] = {}

    def submit(self, job: JobSpec, config: ExperimentConfig, run_dir: str) -> None:
        self._futures[
            self._pool.submit(_run, self.job_function, job, config, run_dir, self.workers)
        ] = job

    @property
    def pending(self) -> int:
        return len(self._futures)

    def results(self, timeout: float | None = None) -> Iterator[tuple[JobSpec, Any]]:
        if not self._futures:
            return
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            job = self._futures.pop(future)
            try:
                yield job, future.result()
            except Exception as err:  # noqa: BLE001 - includes a worker that died
                yield job, err

    def close(self) -> None:
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
