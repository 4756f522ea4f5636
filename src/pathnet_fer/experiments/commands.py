"""CLI sub-commands of the ``experiments`` stage: experiment, demo, report."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pathnet_fer.yaml_config.options import add_set_option

EPILOG = """\
Re-running the same command continues an interrupted run from its checkpoints (finished
work is kept). Errors print one line; PATHNET_FER_DEBUG=1 shows the traceback.
Settings: see docs/experiments.md; override any with --set key.sub=value,
e.g. --set evolution.generations=200 --set protocol.folds=3."""


def _add_common(p: argparse.ArgumentParser) -> None:
    add_set_option(p)
    p.add_argument(
        "--restart",
        action="store_true",
        help="discard what is in the output directory and start again",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run (the default when --out holds one)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: one per CPU core)"
    )
    p.add_argument(
        "--executor",
        choices=("local", "inline", "dask"),
        default=None,
        help="where jobs run (executor.kind; dask: docs/cluster.md)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="dask: a running scheduler, e.g. tcp://host:8786 (default: a LocalCluster here)",
    )
    p.add_argument("--scheduler-file", default=None, help="dask: a running scheduler's JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``experiment``, ``demo`` and ``report``."""
    p = sub.add_parser(
        "experiment",
        help="run a study from a YAML config (source -> transfer vs scratch)",
        description="Run every experiment set x iteration x fold of CONFIG: the source task, "
        "the destination with transfer, and the destination from scratch with the same budget; "
        "then write metrics.csv, summary.csv/.md, figures and models into --out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "config", help="a YAML file, or the name of a shipped config (paper, ckplus-jaffe, demo)"
    )
    p.add_argument("--out", default=None, help="run directory (default: runs/<config name>)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config, the jobs and the fold plan, run nothing",
    )
    _add_common(p)
    p.set_defaults(func=_experiment)

    d = sub.add_parser(
        "demo",
        help="run configs/demo.yaml end to end (preprocess, experiment, report)",
        description="The main job: preprocess FER-2013, CK+48 and JAFFE from the data root "
        "(cached), learn FER-2013 once and transfer it into CK+48 and JAFFE briefly on every "
        "core, fit the deployed model on every subject, and print where the report is and "
        "the predict command for that model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    d.add_argument("--config", default=None, help="another config instead of demo.yaml")
    _add_common(d)
    d.set_defaults(func=_demo)

    r = sub.add_parser(
        "report",
        help="rebuild tables and figures of a run directory",
        description="Re-read RUN_DIR's job outputs and rewrite metrics.csv, "
        "summary.csv, summary.md and figures/ (e.g. after baselines added arms).",
    )
    r.add_argument("run_dir")
    r.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="METRICS_CSV",
        help="also include another run's metrics.csv (e.g. a baselines run, "
        "`pathnet-fer baseline ... --out DIR`): copied into RUN_DIR/parts/ so its "
        "arms stay in every later report (repeatable)",
    )
    r.set_defaults(func=_report)


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = [] if args.workers is None else [f"executor.workers={args.workers}"]
    if args.executor is not None:
        extra.append(f"executor.kind={args.executor}")
    if args.address is not None or args.scheduler_file is not None:
        if args.executor not in (None, "dask"):
            raise SystemExit("error: --address/--scheduler-file need --executor dask")
        extra.append("executor.kind=dask")
    if args.address is not None:
        extra.append(f"executor.address={json.dumps(args.address)}")
    if args.scheduler_file is not None:
        extra.append(f"executor.scheduler_file={json.dumps(args.scheduler_file)}")
    if args.quiet:
        extra.append("logging.progress=false")
    return list(args.overrides) + extra


def _errors():
    from pathnet_fer.datasets.loading import DataMissingError
    from pathnet_fer.experiments.config import ConfigError
    from pathnet_fer.experiments.run_compat import RunDirError

    # RuntimeError: failed jobs (already logged with tracebacks in the run's log.txt);
    # ValueError: bad settings found while planning (e.g. more folds than subjects).
    if os.environ.get("PATHNET_FER_DEBUG"):
        return (ConfigError, DataMissingError, RunDirError)
    return (ConfigError, DataMissingError, RunDirError, RuntimeError, ValueError)


def _experiment(args: argparse.Namespace) -> int:
    from pathnet_fer.experiments.config_loading import load_config

    try:
        config = load_config(args.config, _overrides(args))
        out = Path(args.out) if args.out else Path("runs") / config.name
        if args.dry_run:
            return _dry_run(config, out)
        from pathnet_fer.experiments.runner import run_experiment

        result = run_experiment(config, out, restart=args.restart, quiet=args.quiet)
    except _errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {result.summary_md}")
    return 0


def _dry_run(config, out: Path) -> int:
    from pathnet_fer.experiments.datasets import check_link_leaks, fold_plan
    from pathnet_fer.experiments.job_plan import plan_jobs
    from pathnet_fer.experiments.plan import ITERATION_READINGS
    from pathnet_fer.experiments.union_checks import check_union_files

    print(config.to_yaml())
    print(f"# output: {out}")
    print(
        f"# iterations ({config.protocol.iteration_mode}): "
        f"{ITERATION_READINGS[config.protocol.iteration_mode]}"
    )
    from pathnet_fer.faces.preprocess import NotCachedError, cached_only

    check_union_files(config)  # lists files only: what a run would refuse, refused here
    for job in plan_jobs(config):
        after = f", after {', '.join(job.after)}" if job.after else ""
        print(f"# job {job.job_id}: {len(job.slots)} runs, cost {job.cost:.0f}{after}")
    try:
        with cached_only():  # "runs nothing": never decodes media nor writes the cache
            datasets: dict = {}
            plan = fold_plan(config, datasets)
            check_link_leaks(config, datasets)
    except NotCachedError as err:
        print(f"# folds: not shown: {err}; the real run builds them first")
        return 0
    summary = (
        plan.groupby(["experiment", "role", "dataset", "fold", "side"])
        .agg(subjects=("subject", "nunique"), samples=("n_samples", "sum"))
        .reset_index()
    )
    print(summary.to_string(index=False))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pathnet_fer.experiments.demo import DEMO_CONFIG, run_demo

    try:
        run_demo(
            args.out,
            _overrides(args),
            config=args.config or DEMO_CONFIG,
            restart=args.restart,
            quiet=args.quiet,
        )
    except _errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathnet_fer.experiments.run_dir import RunDirLockedError, RunLock

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.yaml").exists():
        print(f"error: {run_dir} is not a run directory (no config.yaml)", file=sys.stderr)
        return 2
    try:
        lock = RunLock(run_dir).acquire()  # never while another command writes the run
    except (RunDirLockedError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        return _report_locked(args, run_dir)
    finally:
        lock.release()


def _report_locked(args: argparse.Namespace, run_dir: Path) -> int:
    from pathnet_fer.experiments.finalise import add_metrics, finalise

    for extra in args.add:
        src = Path(extra)
        src = src / "metrics.csv" if src.is_dir() else src
        try:
            frame = add_metrics(run_dir, src, part=f"added-{src.resolve().parent.name}")
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"added {len(frame)} rows ({', '.join(sorted(frame.arm.unique()))}) from {src}")
    result = finalise(run_dir)
    print(f"report: {result.summary_md}")
    return 0
