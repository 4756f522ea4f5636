"""Coordinate an experiment: run directory, data, jobs through an executor, final report.

Re-running the same command on the same run directory resumes: finished jobs are skipped
(``jobs/<job>.json``), unfinished ones continue from their last checkpoint, and the tables
and figures are rebuilt from every job's metrics at the end.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pathnet_fer.datasets.loading import check_data, load_dataset
from pathnet_fer.experiments.calibration import calibrate_run
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.config_loading import build_config
from pathnet_fer.experiments.cross_dataset import cross_dataset_section
from pathnet_fer.experiments.dask_executor import DaskExecutor
from pathnet_fer.experiments.dask_faces import fan_out_on_cluster
from pathnet_fer.experiments.datasets import check_link_leaks, fold_plan
from pathnet_fer.experiments.executor import Executor
from pathnet_fer.experiments.executor_kinds import make_executor
from pathnet_fer.experiments.figures import all_learning_curves, confusion_figures
from pathnet_fer.experiments.job_plan import job_generations, plan_jobs
from pathnet_fer.experiments.metrics_log import merge_metric_files, read_metrics
from pathnet_fer.experiments.plan import ITERATION_READINGS
from pathnet_fer.experiments.pooled import member_scores, members_markdown
from pathnet_fer.experiments.report import PAIRED_TEST, latex_tables, write_report
from pathnet_fer.experiments.run_dir import (
    LOCK,
    MARKER,
    RunDirLockedError,
    RunLock,
    clear_run_dir,
    read_marker,
    write_marker,
)
from pathnet_fer.experiments.union_checks import check_union_files
from pathnet_fer.paths import REPO_ROOT, unwritable_reason

# Settings that do not change any result: a resumed run may differ in these.
NON_RESULT_KEYS = {
    ("logging",),
    ("executor", "workers"),
    ("executor", "threads"),
    ("executor", "kind"),
    ("executor", "address"),
    ("executor", "scheduler_file"),
    ("executor", "retries"),
    ("executor", "connect_timeout"),
    ("executor", "worker_timeout"),
    ("protocol", "reuse_sources"),  # a reused source is the same result by its key
    ("cache_dir",),
    ("data_root",),
}


class RunDirError(ValueError):
    """The output directory holds a run of a different configuration."""


class RunDirInUseError(RunDirError):
    """Another live command holds the run directory's lock."""


class RunLog:
    """Lines to stderr and to ``log.txt`` in the run directory."""

    def __init__(self, path: Path, quiet: bool = False):
        self.path, self.quiet = path, quiet

    def __call__(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a") as fh:
            fh.write(f"{stamp} {message}\n")
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def detail(self, text: str) -> None:
        """Only to log.txt (tracebacks)."""
        with self.path.open("a") as fh:
            fh.write(text.rstrip() + "\n")


def package_versions() -> dict[str, str]:
    """Versions of everything that shapes a result."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name, dist in (
        ("torch", "torch"),
        ("numpy", "numpy"),
        ("cv2", "opencv-python-headless"),
        ("av", "av"),
        ("sklearn", "scikit-learn"),
        ("pandas", "pandas"),
        ("scipy", "scipy"),
        ("pathnet_fer", "pathnet-fer"),
    ):
        try:
            out[name] = md.version(dist)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str | None:
    """The checkout's commit (``+dirty`` when files differ), or None outside a checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return head + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _differences(a: Any, b: Any, where: tuple[str, ...] = ()) -> list[str]:
    if any(where[: len(k)] == k for k in NON_RESULT_KEYS):
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), (*where, str(key)))
        return out
    return [] if a == b else [f"{'.'.join(where)}: {a!r} (run dir) != {b!r} (now)"]


def prepare_run_dir(
    config: ExperimentConfig, out: Path, restart: bool = False, lock: RunLock | None = None
) -> bool:
    """Create the run directory or check that it holds this config. Returns True on resume.

    With ``lock``, the directory's lock is taken before anything in it changes. Only a
    directory carrying the run marker (``.pathnet-fer-run``) is ever deleted.
    """
    saved = out / "config.yaml"
    marked = read_marker(out) is not None
    in_use = out.exists() and any(p.name != LOCK for p in out.iterdir())
    if in_use and not marked and not saved.exists():
        raise RunDirError(f"{out} exists and is not a pathnet-fer run directory; choose --out")
    if restart and in_use and not marked:
        raise RunDirError(
            f"{out} does not carry the marker pathnet-fer writes into its run directories "
            f"({MARKER}); refusing to delete it. Delete it yourself or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    if lock is not None:
        try:
            lock.acquire()
        except RunDirLockedError as err:
            raise RunDirInUseError(str(err)) from None
    if restart and marked:
        clear_run_dir(out)
    if saved.exists():
        import yaml

        diff = _differences(yaml.safe_load(saved.read_text()), config.to_dict())
        if diff:
            hint = ", or --restart to discard that run" if marked else ""
            raise RunDirError(
                f"{out} holds a run with a different configuration:\n  "
                + "\n  ".join(diff)
                + f"\nUse another --out directory{hint}."
            )
        write_marker(out, config.name)  # run directories of older versions get one too
        return True
    saved.write_text(config.to_yaml())
    write_marker(out, config.name)
    return False


def check_same_folds(out: Path, plan: pd.DataFrame) -> None:
    """A resumed run must see the data it started with: same subjects, folds, samples.

    ``data_root`` may change between sessions (data moved), but a root with other
    content would train the remaining jobs on other data and folds, and the paired test
    would compare different test subjects: refused."""
    saved = out / "folds.csv"
    if not saved.exists():
        return
    old, new = saved.read_text(), plan.to_csv(index=False)
    if old == new:
        return
    a, b = set(old.splitlines()[1:]), set(new.splitlines()[1:])
    raise RunDirError(
        f"{out} was started on other data: its folds.csv and the folds of the data found "
        f"now differ in {len(a - b)} (run dir) / {len(b - a)} (now) rows (subjects, folds or "
        "sample counts). Point data_root at the data the run started with, or use another "
        "--out"
    )


@dataclass
class ExperimentResult:
    run_dir: Path
    metrics: pd.DataFrame
    summary_md: Path
    figures: list[Path]
    failed: list[str]
    seconds: float


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
    config_dict = config.to_dict()
    failed: list[str] = []
    own_executor = executor is None
    if executor is None and config.executor.kind == "dask":
        executor = DaskExecutor.from_config(config, n_jobs=len(todo), log=log)
    if executor is None:
        executor = make_executor(
            config.executor.kind, config.executor.workers, config.executor.threads, n_jobs=len(todo)
        )
    executor.attach_log(log)
    totals = {j.job_id: job_generations(config, j) for j in jobs}
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

    done_ids = {j.job_id for j in jobs} - {j.job_id for j in todo}
    waiting = list(todo)  # a job is submitted once every job it needs (``after``) is done

    def submit_ready() -> None:
        for job in list(waiting):
            if any(a in failed for a in job.after):
                waiting.remove(job)
                failed.append(job.job_id)
                need = ", ".join(a for a in job.after if a in failed)
                log(f"job {job.job_id} NOT RUN: it needs {need}, which failed")
            elif all(a in done_ids for a in job.after):
                waiting.remove(job)
                executor.submit(job, config_dict, str(out))

    try:
        submit_ready()
        while executor.pending or waiting:
            if not executor.pending:
                raise RuntimeError(f"jobs wait on jobs that never run: {waiting}")
            for job, result in executor.results(timeout=1.0):
                if isinstance(result, BaseException):
                    failed.append(job.job_id)
                    log(f"job {job.job_id} FAILED: {type(result).__name__}: {result}")
                    log.detail("".join(traceback.format_exception(result)))
                else:
                    done_ids.add(job.job_id)
                    for note in result.get("notes", []):  # e.g. a damaged store entry
                        log(f"job {job.job_id}: {note}")
                    secs = sum(p["seconds"] for p in result["phases"]) if result["phases"] else 0
                    how = {"run": ", reused this run's", "store": ", reused from the store"}
                    reused = how.get(result.get("reused", ""), "")
                    log(
                        f"job {job.job_id} done ({result['runs']} runs, {secs:.0f} s "
                        f"evolving{reused})"
                    )
            submit_ready()
            refresh()
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


def add_metrics(run_dir: Path, metrics_csv: Path, part: str) -> pd.DataFrame:
    """Put another run's metric rows (e.g. baselines) into ``run_dir/parts/<part>/``.

    ``finalise`` rebuilds ``metrics.csv`` from ``parts/*/*.csv`` only, so a run directory
    copied without its ``parts/`` (fetched from another machine) would lose its own rows:
    those are kept first as ``parts/original/``. Rows of arms that ``metrics_csv`` brings
    replace the old rows of the same arms. Returns the rows added.
    """

    run_dir = Path(run_dir)
    added = read_metrics(metrics_csv)  # validates the contract before anything is written
    parts = run_dir / "parts"
    others = [p for p in parts.glob("*/*.csv") if p.parent.name != part]
    if not others and (run_dir / "metrics.csv").exists():
        original = read_metrics(run_dir / "metrics.csv")
        original = original[~original["arm"].isin(set(added["arm"]))]
        (parts / "original").mkdir(parents=True, exist_ok=True)
        original.to_csv(parts / "original" / "metrics.csv", index=False)
    dest = parts / part / "metrics.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    added.to_csv(dest, index=False)
    return added


def finalise(
    out: Path,
    config: ExperimentConfig | None = None,
    quiet: bool = True,
    clip_sets: dict[str, Path] | None = None,
) -> ExperimentResult:
    """Merge job outputs into metrics.csv / confusion.csv, write tables and figures."""
    import yaml

    out = Path(out)
    if config is None:
        config = build_config(yaml.safe_load((out / "config.yaml").read_text()))
    parts = sorted(
        p for p in (out / "parts").glob("*/*.csv") if not p.name.endswith("_confusion.csv")
    )
    if not parts:
        raise FileNotFoundError(f"{out} holds no job metrics yet (parts/*/*.csv)")
    metrics = merge_metric_files(parts, out / "metrics.csv")
    conf_parts = sorted((out / "parts").glob("*/*_confusion.csv"))
    confusion = (
        pd.concat([pd.read_csv(p) for p in conf_parts], ignore_index=True)
        if conf_parts
        else pd.DataFrame()
    )
    confusion.to_csv(out / "confusion.csv", index=False)
    meta = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    header = (
        f"# Experiment `{config.name}`\n\n"
        f"Seed {config.seed}; {config.protocol.iterations} iteration(s) x "
        f"{config.protocol.folds} fold(s) (subject-independent unless a dataset says "
        f"otherwise, see folds.csv); {config.generations('source')} source and "
        f"{config.generations('destination')} destination generations per task; clip vote: "
        f"{config.protocol.clip_vote}.\n\n"
        f"Iterations ({config.protocol.iteration_mode}): "
        f"{ITERATION_READINGS[config.protocol.iteration_mode]}.\n\n"
        f"Commit {meta.get('git_commit')}; versions {meta.get('versions')}.\n"
    )
    paths = write_report(out, metrics, header=header)
    calibration = calibrate_run(out)
    unions = {n: list(spec.union) for n, spec in config.datasets.items() if spec.union}
    members = ""
    if unions:
        by_member = member_scores(calibration["sets"], unions, calibration["table"])
        by_member.to_csv(out / "pooled_members.csv", index=False)
        members = members_markdown(by_member)
    cross = cross_dataset_section(out, config, clip_sets=clip_sets) if calibration["finals"] else ""
    for section in (calibration["markdown"], members, cross):
        if section:
            md = paths["summary_md"]
            md.write_text(md.read_text().rstrip() + "\n\n" + section)
            tex = paths["summary_tex"]
            tex.write_text(tex.read_text() + "\n" + latex_tables(section))
    figures = all_learning_curves(metrics, out / "figures") + calibration["figures"]
    if not confusion.empty:
        figures += confusion_figures(confusion[confusion.arm != "source"], out / "figures")
    if figures:
        md = paths["summary_md"]
        md.write_text(
            md.read_text()
            + "\n## Figures\n\n"
            + "\n".join(
                f"![{p.stem}](figures/{p.name})"
                for p in figures
                if p.name.startswith(("learning", "calibration"))
            )
            + "\n"
        )
    return ExperimentResult(
        run_dir=out,
        metrics=metrics,
        summary_md=paths["summary_md"],
        figures=figures,
        failed=[],
        seconds=0.0,
    )
