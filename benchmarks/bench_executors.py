"""Benchmark: the small study (configs/small.yaml) on the local executor vs a Dask LocalCluster, same workers.

The study is ``configs/small.yaml`` REDUCED by default (``--generations 30`` instead of
100, so both executors finish in minutes on 2 shared cores): 3 sets x 2 folds x 1
iteration, 12 runs. Both executors run the same jobs (``--cut``, default ``run``: 12 jobs,
the finest cut and so the most scheduling) with the same ``--workers`` processes x 1
torch thread, into fresh run directories, after the face crops are cached. Reported:

- wall time of ``run_experiment`` for each (executor start included: the local pool's
  process spawns, the LocalCluster's scheduler and workers), and their ratio;
- the LocalCluster start alone, and the Dask overhead per job:
  ``(dask wall - local wall) / jobs``;
- a no-op round trip (submit + result of 200 trivial tasks) on the same cluster: the
  scheduling cost of one job without any work;
- the jobs' own evolving seconds, and wall - evolving/workers: on a shared machine the
  compute varies with the neighbours' load, this separates it from the rest;
- that both runs gave the same metrics (they must: the executor changes no result);
- for scale, the default batched jobs (``executor.cut: null``, 6 jobs) on the local
  executor: what finer, one-run jobs cost on one machine.

Run: ``.venv/bin/python benchmarks/bench_executors.py`` (``--help`` for options;
``--generations 100`` for the full small study). Timings on a shared machine are noisy: rerun
on a quiet one (``--repeat 3`` alternates the executors and reports each run).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_once(
    kind: str, args, root: Path, index: int, cut: str | None = None
) -> tuple[float, float, Path]:
    """One study on ``kind``; returns (wall s, executor start s, run dir)."""
    from pathnet_fer.experiments.config_loading import load_config
    from pathnet_fer.experiments.executor import LocalExecutor
    from pathnet_fer.experiments.runner import run_experiment

    config = load_config("small", overrides(args, kind, cut or args.cut))
    out = root / f"{kind}-{cut or args.cut}-{index}"
    t0 = time.perf_counter()
    if kind == "dask":
        from pathnet_fer.experiments.dask_executor import DaskExecutor

        executor = DaskExecutor.from_config(config, log=lambda _m: None)
    else:
        executor = LocalExecutor(args.workers, 1)  # spawns its processes on first submit
    start = time.perf_counter() - t0
    try:
        run_experiment(config, out, executor=executor, quiet=True)
    finally:
        executor.close()
    return time.perf_counter() - t0, start, out


def evolving_seconds(run_dir: Path) -> float:
    """Seconds the jobs spent in evolution (their own clocks): compute, not scheduling."""
    total = 0.0
    for path in run_dir.glob("jobs/*__*.json"):
        total += sum(p["seconds"] for p in json.loads(path.read_text())["phases"])
    return total


def overrides(args, kind: str, cut: str) -> list[str]:
    return [
        f"evolution.generations={args.generations}",
        f"protocol.eval_every={max(1, args.generations // 3)}",
        f"executor.kind={kind}",
        f"executor.workers={args.workers}",
        "executor.threads=1",
        f"executor.cut={cut}",
        "logging.progress=false",
        "save_models=none",
    ]


def noop_round_trip(workers: int, tasks: int = 200) -> float:
    """Seconds per trivial task, submitted one by one and awaited, on a LocalCluster."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, silence_logs=40) as cluster,
        Client(cluster) as client,
    ):
        client.submit(int, 0, pure=False).result()  # warm
        t0 = time.perf_counter()
        for i in range(tasks):
            client.submit(int, i, key=f"noop-{i}").result()
        return (time.perf_counter() - t0) / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generations", type=int, default=30, help="per task (small: 100)")
    parser.add_argument("--workers", type=int, default=2, help="processes for both executors")
    parser.add_argument("--cut", default="run", choices=("set", "fold", "run"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--no-batched",
        action="store_true",
        help="skip the reference run of the default batched jobs (cut null) on the local executor",
    )
    parser.add_argument("--out", default=None, help="keep run dirs and results.json here")
    args = parser.parse_args()

    import pandas as pd

    from pathnet_fer.datasets.loading import load_dataset
    from pathnet_fer.experiments.config_loading import load_config
    from pathnet_fer.experiments.job_plan import plan_jobs
    from pathnet_fer.experiments.metrics_log import read_metrics

    root = Path(args.out or tempfile.mkdtemp(prefix="bench-executors-"))
    root.mkdir(parents=True, exist_ok=True)
    config = load_config("small", overrides(args, "local", args.cut))
    for name in config.datasets:  # cache the crops outside the timed runs
        load_dataset(config, name)
    jobs = len(plan_jobs(config))
    print(
        f"small study, reduced: {args.generations} generations per task (small: 100), "
        f"{len(config.sets)} sets x {config.protocol.folds} folds x "
        f"{config.protocol.iterations} iteration; cut {args.cut}: {jobs} jobs; "
        f"{args.workers} workers x 1 thread; {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    rows = []
    for i in range(args.repeat):
        for kind in ("local", "dask") if i % 2 == 0 else ("dask", "local"):
            wall, start, out = run_once(kind, args, root, i)
            evolve = evolving_seconds(out)
            rows.append(
                {
                    "repeat": i,
                    "kind": kind,
                    "wall_s": wall,
                    "start_s": start,
                    "evolve_s": evolve,
                    "dir": out,
                }
            )
            print(
                f"  {kind:5s} run {i}: {wall:7.1f} s (executor start {start:.1f} s; jobs "
                f"evolving {evolve:.1f} s in all, wall - evolving/workers "
                f"{wall - evolve / args.workers:.1f} s)"
            )
    batched = None
    if not args.no_batched:
        batched, _, _ = run_once("local", args, root, 0, cut="null")
        n = len(plan_jobs(load_config("small", overrides(args, "local", "null"))))
        print(f"  local, batched jobs (cut null, {n} jobs): {batched:7.1f} s")
    frame = pd.DataFrame(rows)
    local = frame[frame.kind == "local"].wall_s.median()
    dask = frame[frame.kind == "dask"].wall_s.median()
    start = frame[frame.kind == "dask"].start_s.median()
    rest = {
        k: (frame[frame.kind == k].wall_s - frame[frame.kind == k].evolve_s / args.workers).median()
        for k in ("local", "dask")
    }
    a, b = (
        read_metrics(frame[frame.kind == k].dir.iloc[0]).query("metric != 'train_seconds'")
        for k in ("local", "dask")
    )
    same = a.reset_index(drop=True).equals(b.reset_index(drop=True))
    noop = noop_round_trip(args.workers)
    result = {
        "generations": args.generations,
        "cut": args.cut,
        "jobs": jobs,
        "workers": args.workers,
        "local_wall_s": local,
        "dask_wall_s": dask,
        "ratio_dask_over_local": dask / local,
        "overhead_pct": 100 * (dask - local) / local,
        "dask_cluster_start_s": start,
        "dask_overhead_per_job_s": (dask - local) / jobs,
        "noop_round_trip_ms": 1000 * noop,
        "same_metrics": bool(same),
        "local_batched_wall_s": batched,
        "local_evolve_s": frame[frame.kind == "local"].evolve_s.median(),
        "dask_evolve_s": frame[frame.kind == "dask"].evolve_s.median(),
        "local_wall_minus_evolve_per_worker_s": rest["local"],
        "dask_wall_minus_evolve_per_worker_s": rest["dask"],
    }
    print(
        f"local {local:.1f} s, dask {dask:.1f} s: ratio {dask / local:.3f} "
        f"({result['overhead_pct']:+.1f} %, target <= +10 %); LocalCluster start {start:.1f} s; "
        f"overhead per job {result['dask_overhead_per_job_s']:+.2f} s; no-op task round trip "
        f"{1000 * noop:.1f} ms; same metrics: {same}"
    )
    print(
        f"wall - evolving/workers (start-up, data loading, evaluation, scheduling): local "
        f"{rest['local']:.1f} s, dask {rest['dask']:.1f} s"
    )
    (root / "results.json").write_text(json.dumps(result, indent=1))
    print(f"results: {root / 'results.json'}")


if __name__ == "__main__":
    main()
