"""Coordinate an experiment: run directory, data, jobs through an executor, final report.

Re-running the same command on the same run directory resumes: finished jobs are skipped
(``jobs/<job>.json``), unfinished ones continue from their last checkpoint, and the tables
and figures are rebuilt from every job's metrics at the end.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pathnet_fer.datasets.loading import check_data, load_dataset
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.dask_executor import DaskExecutor
from pathnet_fer.experiments.dask_faces import fan_out_on_cluster
from pathnet_fer.experiments.datasets import check_link_leaks, fold_plan
from pathnet_fer.experiments.executor import Executor
from pathnet_fer.experiments.executor_kinds import make_executor
from pathnet_fer.experiments.finalise import ExperimentResult, finalise
from pathnet_fer.experiments.job_plan import job_generations, plan_jobs
from pathnet_fer.experiments.plan import ITERATION_READINGS, JobSpec
from pathnet_fer.experiments.provenance import RunLog, git_commit, host, package_versions
from pathnet_fer.experiments.report import PAIRED_TEST
from pathnet_fer.experiments.run_compat import RunDirError, check_same_folds, prepare_run_dir
from pathnet_fer.experiments.run_dir import RunLock
from pathnet_fer.experiments.scheduling import run_jobs
from pathnet_fer.experiments.union_checks import check_union_files
from pathnet_fer.paths import unwritable_reason


def run_experiment(
    config: ExperimentConfig,
    out: str | Path,
    restart: bool = False,
    executor: Executor | None = None,
    quiet: bool = False,
    clip_sets: dict[str, Path] | None = None,
) -> ExperimentResult:
    """Run every job of ``config`` into ``out`` (resuming what is there) and write the report.
    ``clip_sets``: labelled clip folders no model trains on, added to the report's
    cross-dataset table (the demo's CREMA-D sample).

    The run directory is locked while this runs: a second command on it is refused."""
    out = Path(out).expanduser().resolve()
    lock = RunLock(out)
    try:
        return _run_experiment(config, out, restart, executor, quiet, lock, clip_sets)
    finally:
        lock.release()


def _run_experiment(
    config: ExperimentConfig,
    out: Path,
    restart: bool,
    executor: Executor | None,
    quiet: bool,
    lock: RunLock,
    clip_sets: dict[str, Path] | None = None,
) -> ExperimentResult:
    from tqdm.auto import tqdm

    start = time.perf_counter()
    # Before any face is cropped (hours for FER-2013 on a cold cache): a run dir that
    # cannot be written is one line now, not a traceback after the preprocessing.
    reason = unwritable_reason(out)
    if reason:
        raise RunDirError(f"--out {out}: {reason}")
    check_data(config, sorted({d for s in config.sets for d in s.links}))
    check_union_files(config)  # one face in two members: counted twice, leaked
    # Preprocess (or read cached crops) once here, with all cores, and plan the folds
    # BEFORE the run directory exists: a bad setting (say, more folds than subjects) then
    # leaves nothing behind that a corrected command would refuse as "different".
    names = list(dict.fromkeys(d for s in config.sets for d in s.links))
    if config.executor.kind == "dask" and (
        config.executor.address or config.executor.scheduler_file
    ):
        # Face extraction as cluster tasks too; the shared cache is their result.
        fan_out_on_cluster(
            config, names, log=lambda m: None if quiet else print(m, file=sys.stderr, flush=True)
        )
    datasets, notes = {}, []
    for name in names:
        t0 = time.perf_counter()
        datasets[name] = load_dataset(config, name, progress=not quiet)
        faces = datasets[name].faces
        notes.append(
            f"dataset {name}: {len(faces)} crops, "
            f"{len(set(datasets[name].subjects))} subjects, classes "
            f"{list(faces.class_names)} ({time.perf_counter() - t0:.1f} s)"
        )
    plan = fold_plan(config, datasets)
    check_link_leaks(config, datasets)  # two names over one folder in a chain
    del datasets

    resumed = prepare_run_dir(config, out, restart, lock)
    if resumed:
        check_same_folds(out, plan)
    log = RunLog(out / "log.txt", quiet)
    log(f"{'resuming' if resumed else 'starting'} experiment {config.name!r} in {out}")
    reading = ITERATION_READINGS[config.protocol.iteration_mode]
    log(f"iterations ({config.protocol.iteration_mode}): {reading}")
    for note in notes:
        log(note)
    plan.to_csv(out / "folds.csv", index=False)
    meta_path = out / "run.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.setdefault("started", datetime.now(UTC).isoformat(timespec="seconds"))
    meta.setdefault("sessions", []).append(
        {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "argv": sys.argv,
            "git_commit": git_commit(),
            "versions": package_versions(),
            "host": host(),
        }
    )
    meta.update(
        {
            "name": config.name,
            "seed": config.seed,
            "device": config.device,
            "iteration_mode": config.protocol.iteration_mode,
            "iteration_reading": reading,
            "clip_vote": config.protocol.clip_vote,
            "paired_test": PAIRED_TEST,
            "versions": package_versions(),
            "git_commit": git_commit(),
            "data_root": str(config.resolved_data_root()),
        }
    )
    meta_path.write_text(json.dumps(meta, indent=1))

    jobs = plan_jobs(config)
    (out / "jobs").mkdir(exist_ok=True)
    (out / "jobs" / "plan.json").write_text(json.dumps([j.to_dict() for j in jobs], indent=1))
    todo = [j for j in jobs if not (out / "jobs" / f"{j.job_id}.json").exists()]
    log(
        f"{len(jobs)} jobs ({len(jobs) - len(todo)} already finished); "
        f"{config.generations('source')} source / {config.generations('destination')} "
        f"destination generations per task"
    )
    own_executor = executor is None
    if executor is None and config.executor.kind == "dask":
        executor = DaskExecutor.from_config(config, n_jobs=len(todo), log=log)
    if executor is None:
        executor = make_executor(
            config.executor.kind, config.executor.workers, config.executor.threads, n_jobs=len(todo)
        )
    executor.attach_log(log)
    totals = job_generations(config, jobs)
    overall = tqdm(
        total=sum(totals.values()),
        desc=f"experiment {config.name}",
        unit="gen",
        position=0,
        disable=quiet or not config.logging.progress,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 15.0,
    )

    def refresh() -> None:
        done = 0
        for j in jobs:
            path = out / "progress" / f"{j.job_id}.json"
            if (out / "jobs" / f"{j.job_id}.json").exists():
                done += totals[j.job_id]
            elif path.exists():
                try:
                    done += int(json.loads(path.read_text())["done"])
                except (ValueError, KeyError, OSError):
                    pass
        overall.update(done - overall.n)

    def job_done(job: JobSpec, result: dict) -> None:
        for note in result.get("notes", []):  # e.g. a damaged store entry
            log(f"job {job.job_id}: {note}")
        secs = sum(p["seconds"] for p in result["phases"]) if result["phases"] else 0
        how = {"run": ", reused this run's", "store": ", reused from the store"}
        reused = how.get(result.get("reused", ""), "")
        log(f"job {job.job_id} done ({result['runs']} runs, {secs:.0f} s evolving{reused})")

    done_ids = {j.job_id for j in jobs} - {j.job_id for j in todo}
    try:
        failed = run_jobs(
            executor, todo, config, str(out), done_ids, log, job_done, refresh, log.detail
        )
    finally:
        overall.close()
        if own_executor:
            executor.close()
    if failed and not any((out / "jobs").glob("*__*.json")):
        raise RuntimeError(
            f"every job failed ({', '.join(failed)}); see {out / 'log.txt'} for the tracebacks"
        )
    result = finalise(out, config, quiet=quiet, clip_sets=clip_sets)
    result.failed = failed
    result.seconds = time.perf_counter() - start
    log(f"finished in {result.seconds:.0f} s; report: {result.summary_md}")
    if failed:
        raise RuntimeError(
            f"{len(failed)} job(s) failed: {', '.join(failed)}; see {out / 'log.txt'}. "
            "Re-run the same command to retry them (finished work is kept)."
        )
    return result
