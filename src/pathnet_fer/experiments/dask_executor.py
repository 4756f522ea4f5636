"""``executor.kind: dask``: protocol jobs on a Dask distributed cluster (docs/cluster.md).

With ``executor.address`` (``tcp://host:8786``) or ``executor.scheduler_file`` it joins a
running scheduler (SLURM through dask-jobqueue, Kubernetes, ``dask scheduler``); without
either it starts a ``distributed.LocalCluster`` of ``workers`` processes, each running one
job at a time with ``threads`` torch threads, so a laptop and a cluster run the same config.

- Keys are deterministic: ``pathnet-fer-<hash of config and run dir>-<job>``. A job that is
  submitted again while the scheduler still holds it (a second coordinator, a restarted
  one) shares the running task instead of starting another.
- A worker lost mid-job (killed, node gone) -> the job is started again, at most
  ``executor.retries`` times, and continues from its checkpoint in the run directory.
  An error raised by the job itself (bad data, a bug) is reported once, never retried:
  the same inputs would raise it again.
- Before anything runs, the coordinator writes a marker (a token) into the run directory
  if there is none yet; every job checks it first and fails fast with :class:`RunDirNotVisible` on a worker that does not
  see the run directory (it must be on storage shared by all workers).
- When the study's device is CUDA, each job asks for ``resources={"GPU": 1}``: start
  workers with ``--resources GPU=1`` (one per GPU; dask-cuda does that for you).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.dask_connect import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_WORKER_TIMEOUT_S,
    connect,
)
from pathnet_fer.experiments.execute import execute_job
from pathnet_fer.experiments.executor import Executor, JobFunction
from pathnet_fer.experiments.plan import JobSpec
from pathnet_fer.experiments.run_dir import CLUSTER_MARKER

# Settings that change no result: two coordinators of the same study share job keys.
_KEY_SKIP = ("executor", "logging")


class RunDirNotVisible(RuntimeError):
    """A worker cannot see the run directory the coordinator writes to."""


def job_key(config_dict: dict[str, Any], run_dir: str | Path, job_id: str, job: Any = None) -> str:
    """Deterministic Dask key of a job: same study, same run directory, same job -> same key.

    The run directory is part of it: the same config run into two directories is two
    studies, each with its own files. ``job``: the job itself (a dataclass), whose fields
    enter too: a baseline job carries settings the config does not hold."""
    relevant = {k: v for k, v in config_dict.items() if k not in _KEY_SKIP}
    fields = dataclasses.asdict(job) if dataclasses.is_dataclass(job) else None
    blob = json.dumps([relevant, str(Path(run_dir).resolve()), fields], sort_keys=True, default=str)
    return f"pathnet-fer-{hashlib.sha256(blob.encode()).hexdigest()[:16]}-{job_id}"


def write_marker(run_dir: str | Path) -> str:
    """The run directory's marker token, written on first use.

    Kept across coordinator sessions: a job still held by a long-lived scheduler from an
    earlier session (same key, same arguments) passes the check too.
    """
    path = Path(run_dir) / CLUSTER_MARKER
    try:
        return json.loads(path.read_text())["token"]
    except (OSError, ValueError, KeyError):
        pass
    token = uuid.uuid4().hex
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"token": token, "host": socket.gethostname(), "pid": os.getpid()}))
    tmp.replace(path)
    return token


def check_marker(run_dir: str | Path, token: str) -> None:
    """Raise RunDirNotVisible unless this process sees the coordinator's marker."""
    path = Path(run_dir) / CLUSTER_MARKER
    try:
        seen = json.loads(path.read_text()).get("token")
    except (OSError, ValueError):
        seen = None
    if seen != token:
        what = "another run's marker" if seen else "no marker"
        raise RunDirNotVisible(
            f"worker {socket.gethostname()} (pid {os.getpid()}) cannot see the run directory "
            f"{run_dir} ({what} at {path}): on a cluster the run directory and the crop cache "
            "must be on storage every worker mounts at the same path (NFS, Lustre, GPFS...); "
            "choose --out (and cache_dir) there"
        )


# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also freezes glibc's
# mmap threshold at 128 KiB: every larger tensor is then a fresh mmap (page faults), and
# evolution ran 1.6-2.5x slower in such a worker (measured, 1 thread, a 2304-input PathNet).
# A 64 MiB threshold restores the speed; memory trimming below it is unchanged.
_MMAP_THRESHOLD = 64 * 2**20
_M_MMAP_THRESHOLD = -3  # glibc malloc.h


def restore_malloc_speed() -> bool:
    """Raise glibc's mmap threshold where MALLOC_TRIM_THRESHOLD_ froze it; True if done."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc
        return False


def run_on_worker(
    job_function: JobFunction,
    job: JobSpec,
    config: ExperimentConfig,
    run_dir: str,
    token: str,
    threads: int,
) -> dict[str, Any]:
    """The task a Dask worker runs: check the marker, then the job (resumable)."""
    import torch

    check_marker(run_dir, token)
    restore_malloc_speed()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return job_function(job, config, run_dir, position=1)


def wants_gpu(device: str) -> bool:
    """The study's device is CUDA (``auto``: when this coordinator sees one)."""
    if device == "cuda" or device.startswith("cuda:"):
        return True
    if device == "auto":
        import torch

        return torch.cuda.is_available()
    return False


class DaskExecutor(Executor):
    """Jobs as Dask futures on a running scheduler, or on a LocalCluster started here."""

    def __init__(
        self,
        address: str | None = None,
        scheduler_file: str | None = None,
        workers: int = 0,
        threads: int = 1,
        retries: int = 2,
        gpu: bool = False,
        n_jobs: int | None = None,
        log: Callable[[str], None] | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        worker_timeout: float = DEFAULT_WORKER_TIMEOUT_S,
        job_function: JobFunction = execute_job,
    ) -> None:
        self.job_function = job_function
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as err:  # pragma: no cover - the extra is installed in CI
            raise RuntimeError(
                "executor.kind=dask needs Dask distributed: pip install 'pathnet-fer[dask]'"
            ) from err
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.threads, self.retries, self.gpu = threads, retries, gpu
        self.cluster = None
        if address or scheduler_file:
            # Bounded waits and one line for each mistake (dask_connect.py).
            self.client = connect(
                address,
                scheduler_file,
                connect_timeout=connect_timeout,
                worker_timeout=worker_timeout,
                log=self.log,
            )
            where = address or f"scheduler file {scheduler_file}"
        else:
            n = workers if workers > 0 else max(1, len(os.sched_getaffinity(0)))
            if n_jobs is not None:
                n = max(1, min(n, n_jobs))
            # A lost worker is our retry, counted here (the scheduler's own count: 0), and
            # a worker holds only the jobs it runs (none queued to be lost with it).
            with dask.config.set(
                {
                    "distributed.scheduler.allowed-failures": 0,
                    "distributed.scheduler.worker-saturation": 1.0,
                    # Not set in this process's environment (it would reach every process
                    # started from here, e.g. a local executor's pool) nor in the workers'.
                    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                }
            ):
                self.cluster = LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,  # one job per process, as the local executor
                    processes=True,
                    dashboard_address=":0",
                    resources={"GPU": 1} if gpu else None,
                    silence_logs=40,  # logging.ERROR: worker chatter stays out of the log
                )
            self.client = Client(self.cluster)
            where = (
                f"LocalCluster of {n} worker process(es), one job x {threads} torch thread(s) each"
            )
        self.log(f"dask: {where}; dashboard {self.client.dashboard_link}")
        self._futures: dict[Any, JobSpec] = {}
        self._attempts: dict[str, int] = {}
        self._tokens: dict[str, str] = {}

    @classmethod
    def from_config(
        cls, config, n_jobs: int | None = None, log=None, job_function: JobFunction = execute_job
    ) -> DaskExecutor:
        e = config.executor
        return cls(
            address=e.address,
            scheduler_file=e.scheduler_file,
            workers=e.workers,
            threads=e.threads,
            retries=e.retries,
            gpu=wants_gpu(config.device),
            n_jobs=n_jobs,
            log=log,
            connect_timeout=e.connect_timeout,
            worker_timeout=e.worker_timeout,
            job_function=job_function,
        )

    def attach_log(self, log: Callable[[str], None]) -> None:
        self.log = log

    @property
    def dashboard_link(self) -> str:
        return self.client.dashboard_link

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> process id (tests, diagnostics)."""
        return self.client.run(os.getpid)

    def submit(self, job: JobSpec, config: ExperimentConfig, run_dir: str) -> None:
        if run_dir not in self._tokens:
            self._tokens[run_dir] = write_marker(run_dir)
        future = self.client.submit(
            run_on_worker,
            self.job_function,
            job,
            config,
            run_dir,
            self._tokens[run_dir],
            self.threads,
            key=job_key(config.to_dict(), run_dir, job.job_id, job),
            retries=0,  # the job's own errors are not retried; lost workers: results()
            resources={"GPU": 1} if self.gpu else None,
            priority=int(job.cost),  # longest first, as on the local executor
        )
        self._futures[future] = job

    @property
    def pending(self) -> int:
        return len(self._futures)

    def results(self, timeout: float | None = None) -> Iterator[tuple[JobSpec, Any]]:
        from distributed import wait
        from distributed.scheduler import KilledWorker

        if not self._futures:
            return
        try:
            done, _ = wait(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return
        for future in done:
            job = self._futures[future]
            try:
                result = future.result()
            except KilledWorker as err:
                attempt = self._attempts.get(job.job_id, 0) + 1
                if attempt <= self.retries:
                    self._attempts[job.job_id] = attempt
                    self.log(
                        f"job {job.job_id}: its worker was lost; starting it again "
                        f"({attempt}/{self.retries}), from its last checkpoint where it has one"
                    )
                    future.retry()
                    continue
                del self._futures[future]
                yield job, err
                continue
            except Exception as err:  # noqa: BLE001 - the job's own error, reported once
                del self._futures[future]
                future.release()
                yield job, err
                continue
            del self._futures[future]
            future.release()
            yield job, result

    def close(self) -> None:
        futures = list(self._futures)
        self._futures.clear()
        if futures:
            self.client.cancel(futures)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
