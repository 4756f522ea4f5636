"""Run the baselines on an experiment config's data, folds and budget; write its metrics.

Fairness rules (docs/baselines.md): the same face crops (the config's face settings),
the same subject folds (``experiments.folds.subject_folds`` with the config's seed, fold
count and stratification), the same budget in samples seen (a destination task of G
generations = G x 2 paths x 50 minibatches x 16 samples), and the same metrics writer,
so ``summary.md`` shows baselines beside PathNet's ``transfer`` and ``scratch`` arms.

The coordinator of a study's shape: the run directory locked, the runs already in its
metrics.csv skipped, every other arm a job (``jobs.py``) run by the study's executors
(``executor.kind``: inline, local processes, Dask) in dependency order
(``experiments.scheduling.run_jobs``), and each finished job's rows written at once.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from pathnet_fer.baselines.jobs import (
    BaselineJob,
    device_of,
    end_run,
    execute_baseline_job,
    plan_baseline_jobs,
    start_run,
)
from pathnet_fer.baselines.run_record import (
    check_same_settings,
    done_runs,
    report_header,
    write_run_config,
)
from pathnet_fer.baselines.settings import (
    SOURCE_ARMS,
    VECTOR_BASELINES,
    BaselineConfigError,
    BaselineSettings,
    expand_arms,
)
from pathnet_fer.baselines.weights import resolve_weights
from pathnet_fer.datasets.loading import LoadedDataset, load_dataset
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.dask_executor import DaskExecutor
from pathnet_fer.experiments.datasets import check_link_leaks, dataset_folds
from pathnet_fer.experiments.executor import Executor, InlineExecutor
from pathnet_fer.experiments.executor_kinds import make_executor
from pathnet_fer.experiments.metrics_log import MetricsWriter, read_metrics
from pathnet_fer.experiments.report import write_report
from pathnet_fer.experiments.run_dir import RunLock
from pathnet_fer.experiments.scheduling import run_jobs
from pathnet_fer.experiments.union_checks import check_union_files


def run_baselines(
    config: ExperimentConfig,
    settings: BaselineSettings,
    out_dir: str | Path,
    datasets: dict[str, LoadedDataset] | None = None,
    progress: Callable[[str], None] | None = print,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Train and score every baseline on every set/iteration/fold; return the metrics.

    ``datasets``: already-loaded data by name (e.g. a slice); the jobs then run in this
    process, on exactly that data. Otherwise each dataset is loaded with ``load_dataset``
    and the jobs run on the executor the config names (``executor:``), or on
    ``executor``. Runs already in ``out_dir/metrics.csv`` are skipped, so a killed run
    resumes; the directory is locked while this runs."""
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out_dir).acquire()
    try:
        return _run(config, settings, out_dir, datasets, progress, executor)
    finally:
        lock.release()


def _run(
    config: ExperimentConfig,
    settings: BaselineSettings,
    out_dir: Path,
    datasets: dict[str, LoadedDataset] | None,
    progress: Callable[[str], None] | None,
    executor: Executor | None,
) -> pd.DataFrame:
    say = progress or (lambda _msg: None)
    device = device_of(config)
    sets = [s for s in config.sets if settings.sets is None or s.name in settings.sets]
    if not sets:
        raise BaselineConfigError(
            f"baselines.sets {settings.sets} match none of {[s.name for s in config.sets]}"
        )
    arms = expand_arms(settings)
    for model in {m for m, _ in arms if m not in VECTOR_BASELINES}:
        resolve_weights(model, settings.weights_for(model))  # fail before hours of work
    check_union_files(config)  # as an experiment does: no face twice, none leaked
    given = datasets is not None
    datasets = dict(datasets or {})
    for s in sets:
        for name in (s.source, s.destination):
            if name not in datasets:
                datasets[name] = load_dataset(config, name)
    check_link_leaks(config, datasets, sets)
    folds_of: dict[str, tuple[list[int], bool]] = {}
    for s in sets:
        dest, source = datasets[s.destination], datasets[s.source]
        if any(m in SOURCE_ARMS for m, _ in arms) and source.input_dim != dest.input_dim:
            raise BaselineConfigError(
                f"set {s.name!r}: source crops give {source.input_dim} features, "
                f"destination {dest.input_dim}; use the same faces.size and faces.colour"
            )
        folds = dataset_folds(config, s.destination, dest)
        shared = s.source != s.destination and len(dataset_folds(config, s.source, source)) == 1
        wanted = [
            f.index + 1 for f in folds if settings.folds is None or f.index + 1 in settings.folds
        ]
        folds_of[s.name] = (wanted, shared)

    metrics_path = out_dir / "metrics.csv"
    check_same_settings(out_dir, config, settings)
    finished = done_runs(metrics_path)
    weights_used: dict[str, dict[str, str]] = {}
    source_records: dict[str, dict[str, Any]] = {}
    write_run_config(out_dir, config, settings, arms, weights_used, device)

    jobs, skipped = plan_baseline_jobs(config, settings, arms, folds_of, finished)
    for line in skipped:
        say(line)
    if given and executor is not None and not isinstance(executor, InlineExecutor):
        raise BaselineConfigError(
            "datasets= are this process's data: run them inline (pass no executor), or "
            "pass no datasets and let each worker load its own"
        )

    def keep(records: dict[str, Any], weights: dict[str, Any]) -> None:
        """A job's source models (the first record of each kept) and CNN weights used."""
        for key, record in records.items():
            source_records.setdefault(key, record)
        weights_used.update(weights)

    failed: list[str] = []
    if jobs:  # nothing to run (a finished run's report rebuilt): no executor to start
        failed = _run_jobs(
            config, out_dir, jobs, datasets if given else None, executor, progress, keep,
            metrics_path,
        )  # fmt: skip
    write_run_config(out_dir, config, settings, arms, weights_used, device, source_records)
    if failed:
        raise RuntimeError(
            f"{len(failed)} baseline job(s) failed: {', '.join(failed)}. Re-run the same "
            "command to retry them (finished runs are kept)."
        )
    metrics = read_metrics(metrics_path)
    write_report(out_dir, metrics, header=report_header(config, settings))
    return metrics


def _run_jobs(
    config: ExperimentConfig,
    out_dir: Path,
    jobs: list[BaselineJob],
    datasets: dict[str, LoadedDataset] | None,
    executor: Executor | None,
    progress: Callable[[str], None] | None,
    keep: Callable[[dict[str, Any], dict[str, Any]], object],
    metrics_path: Path,
) -> list[str]:
    """Run ``jobs`` on ``executor`` (default: the config's; inline with ``datasets``),
    writing each finished job's rows to ``metrics_path``; the failed jobs' ids."""
    say = progress or (lambda _msg: None)
    own = executor is None
    if executor is None:
        executor = _executor(config, len(jobs), datasets is not None, progress)
    cores = _cores_per_job(config, executor, len(jobs))
    session = uuid.uuid4().hex
    jobs = [dataclasses.replace(j, cores=cores, session=session) for j in jobs]
    start_run(str(out_dir), session, datasets if isinstance(executor, InlineExecutor) else None)
    arm_jobs, done = sum(1 for j in jobs if not j.source_kind), 0

    def job_done(job: BaselineJob, result: dict[str, Any]) -> None:
        nonlocal done
        for line in result["notes"]:
            say(line)
        keep(result["source_models"], result["weights_used"])
        if result["rows"]:
            writer.log_many(result["rows"])
            writer.flush()
            done += 1
            if arm_jobs > 1:
                say(f"{done}/{arm_jobs} baseline runs done")

    def traceback_to_stderr(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        with MetricsWriter(metrics_path) as writer:
            return run_jobs(
                executor, jobs, config, str(out_dir), set(), say, job_done,
                detail=traceback_to_stderr,
            )  # fmt: skip
    finally:
        if own:
            executor.close()
        end_run(str(out_dir))  # nothing of the run stays held in this process


def _cores_per_job(config: ExperimentConfig, executor: Executor, n_jobs: int) -> int:
    """Torch threads an ImageNet CNN arm may use: every core inline; on local processes
    the cores over the jobs run at once; on Dask, the threads each worker is given."""
    cores = max(1, len(os.sched_getaffinity(0)))
    if isinstance(executor, InlineExecutor):
        return cores
    if isinstance(executor, DaskExecutor):
        return max(1, int(config.executor.threads or 1))
    workers = getattr(executor, "workers", None) or cores
    return max(1, cores // max(1, min(workers, n_jobs)))


def _executor(
    config: ExperimentConfig,
    n_jobs: int,
    given_data: bool,
    progress: Callable[[str], None] | None,
) -> Executor:
    """The config's executor for the baseline jobs; inline when the caller gave the data
    (another process would load its own copy, not the caller's)."""
    if given_data:
        return InlineExecutor(execute_baseline_job)
    e = config.executor
    if e.kind == "dask":
        return DaskExecutor.from_config(
            config,
            n_jobs=n_jobs,
            log=progress or (lambda m: print(m, file=sys.stderr, flush=True)),
            job_function=execute_baseline_job,
        )
    return make_executor(e.kind, e.workers, e.threads, n_jobs, job_function=execute_baseline_job)
