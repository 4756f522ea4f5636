"""Cluster execution: executor.cut gives the same metrics whatever the cut; a real Dask
LocalCluster (2 worker processes x 1 thread) gives the local executor's metrics, survives
a worker killed mid-job, and reports a bad job once while the others finish."""

from __future__ import annotations

import os
import signal
import threading
import time

import pandas as pd
import pytest

from pathnet_fer.experiments.config import ConfigError
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.execute import execute_job
from pathnet_fer.experiments.executor import InlineExecutor
from pathnet_fer.experiments.job_plan import plan_jobs, units_of
from pathnet_fer.experiments.metrics_log import read_metrics
from pathnet_fer.experiments.run_compat import prepare_run_dir
from pathnet_fer.experiments.run_dir import CLUSTER_MARKER
from pathnet_fer.experiments.runner import run_experiment

pytest.importorskip("distributed")

from pathnet_fer.experiments.dask_executor import (  # noqa: E402
    DaskExecutor,
    RunDirNotVisible,
    check_marker,
    job_key,
    run_on_worker,
    write_marker,
)

# One set, 2 folds x 2 iterations: 8 runs (4 per arm), long enough to kill a job mid-way.
TINY = [
    "sets=[{source: ckplus48, destination: ckplus48}]",
    "evolution.generations=16",
    "evolution.minibatches=4",
    "protocol.eval_every=8",
    "protocol.folds=2",
    "protocol.iterations=2",
    "executor.checkpoint_every=2",
    "executor.workers=2",
    "executor.threads=1",
    "logging.progress=false",
    "save_models=none",
]
KEY = ["experiment", "iteration", "fold", "task", "arm", "generation", "split", "level", "metric"]


def _config(tmp_path_factory, *extra):
    cache = tmp_path_factory.getbasetemp() / "cache"
    return load_config("small", [*TINY, f"cache_dir={cache}", *extra])


def _metrics(run_dir) -> pd.DataFrame:
    m = read_metrics(run_dir)
    m = m[m.metric != "train_seconds"]  # wall time: the only value allowed to differ
    return m.sort_values(KEY).reset_index(drop=True)


def _log(run_dir) -> str:
    return (run_dir / "log.txt").read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, require_data):
    """The study on the local executor (2 worker processes), one job per run."""
    require_data("ckplus48")
    out = tmp_path_factory.mktemp("local") / "run"
    config = _config(tmp_path_factory, "executor.kind=local", "executor.cut=run")
    run_experiment(config, out, quiet=True)
    return _metrics(out)


def test_cut_plans_jobs_per_set_fold_or_run(tmp_path_factory):
    counts = {}
    for cut in ("set", "fold", "run"):
        jobs = plan_jobs(_config(tmp_path_factory, f"executor.cut={cut}"))
        runs = [j for j in jobs if j.arm != "source"]
        counts[cut] = len(runs)
        assert sum(len(j.slots) for j in runs) == 8  # every run exactly once
        # Source units are jobs of their own whatever the cut (shared, seeded by identity).
        assert len(jobs) - len(runs) == 4
    assert counts == {"set": 2, "fold": 4, "run": 8}
    with pytest.raises(ConfigError, match="executor.cut"):
        _config(tmp_path_factory, "executor.cut=gpu")


@pytest.mark.parametrize("cut", ["set", "fold"])
def test_every_cut_gives_the_same_metrics(cut, reference, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"cut-{cut}") / "run"
    config = _config(tmp_path_factory, f"executor.cut={cut}")
    run_experiment(config, out, executor=InlineExecutor(), quiet=True)
    # Bit-identical: every run evolves alone from its own seed, whatever job holds it.
    pd.testing.assert_frame_equal(_metrics(out), reference)


def test_local_cluster_equals_local_executor(reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("dask") / "run"
    config = _config(tmp_path_factory, "executor.kind=dask", "executor.cut=run")
    result = run_experiment(config, out, quiet=True)
    assert result.failed == []
    log = _log(out)
    assert (
        "LocalCluster of 2 worker process(es), one job x 1 torch thread(s) each" in log
        and "dashboard" in log
    )
    assert (out / CLUSTER_MARKER).exists()
    pd.testing.assert_frame_equal(_metrics(out), reference)


def test_killed_worker_resumes_its_job_with_nothing_lost_or_doubled(reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("killed") / "run"
    config = _config(tmp_path_factory, "executor.kind=dask", "executor.cut=fold")
    executor = DaskExecutor.from_config(config, n_jobs=4)
    pids = executor.worker_pids()
    assert len(pids) == 2
    errors: list[BaseException] = []

    def coordinate():
        try:
            run_experiment(config, out, executor=executor, quiet=True)
        except BaseException as err:  # noqa: BLE001 - re-raised below
            errors.append(err)

    # Which job (a fold: two runs, one after another) holds which run.
    key_of = {
        unit.job_id: job_key(config.to_dict(), out, job.job_id, job)
        for job in plan_jobs(config)
        for unit in units_of(job, config)
    }
    thread = threading.Thread(target=coordinate)
    thread.start()
    killed = None
    deadline = time.monotonic() + 240
    try:
        # Kill the worker of a job whose run has checkpointed mid-way (not finished).
        while killed is None and time.monotonic() < deadline and thread.is_alive():
            for ckpt in (out / "checkpoints").glob("*/state.pt"):
                unit = ckpt.parent.name
                if (out / "jobs" / f"{unit}.json").exists():
                    continue
                for address, keys in executor.client.processing().items():
                    if key_of[unit] in map(str, keys) and address in pids:
                        killed = pids[address]
                        os.kill(killed, signal.SIGKILL)
                        break
                if killed:
                    break
            time.sleep(0.02)
        thread.join(300)
    finally:
        executor.close()
    assert killed is not None, "no job could be caught mid-way"
    assert not errors, errors
    log = _log(out)
    assert "its worker was lost; starting it again (1/2)" in log
    assert "FAILED" not in log
    got = _metrics(out)
    assert not got.duplicated(KEY).any()
    pd.testing.assert_frame_equal(got, reference)


def test_a_bad_job_is_reported_once_and_the_others_finish(tmp_path_factory, require_data):
    require_data("ckplus48")
    from distributed import LocalCluster

    out = tmp_path_factory.mktemp("bad") / "run"
    # A running scheduler this time (executor.address), as on a cluster.
    with LocalCluster(n_workers=2, threads_per_worker=1, silence_logs=40) as cluster:
        config = _config(
            tmp_path_factory,
            "executor.kind=dask",
            f"executor.address={cluster.scheduler_address}",
            "executor.cut=run",
        )
        prepare_run_dir(config, out)
        jobs = plan_jobs(config)
        bad = jobs[-1].job_id
        # Bad data in the run directory: this job cannot create its parts/ folder.
        (out / "parts").mkdir()
        (out / "parts" / bad).write_text("not a folder")
        with pytest.raises(RuntimeError, match=f"1 job\\(s\\) failed: {bad}"):
            run_experiment(config, out, quiet=True)
    assert f"dask: {cluster.scheduler_address}" in _log(out)
    log = _log(out)
    failed = [line for line in log.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and bad in failed[0] and "FileExistsError" in failed[0]
    assert "starting it again" not in log  # its own error: not retried
    done = {p.stem for p in (out / "jobs").glob("*__*.json")}
    assert done == {j.job_id for j in jobs} - {bad}
    assert set(read_metrics(out).fold) == {1, 2}  # the others' rows are in metrics.csv


def test_a_worker_that_cannot_see_the_run_dir_fails_fast(tmp_path, tmp_path_factory):
    config = _config(tmp_path_factory, "executor.cut=run")
    job = plan_jobs(config)[0]
    (tmp_path / "run").mkdir()
    token = write_marker(tmp_path / "run")
    assert write_marker(tmp_path / "run") == token  # kept for the run's later sessions
    check_marker(tmp_path / "run", token)
    with pytest.raises(RunDirNotVisible, match="cannot see the run directory .*no marker"):
        run_on_worker(execute_job, job, config, str(tmp_path / "elsewhere"), token, 1)
    with pytest.raises(RunDirNotVisible, match="storage every worker mounts"):
        check_marker(tmp_path / "run", "another-run")
    assert not (tmp_path / "elsewhere").exists()  # nothing was written


def test_job_keys_are_deterministic(tmp_path_factory, tmp_path):
    a = _config(tmp_path_factory, "executor.cut=run").to_dict()
    b = _config(tmp_path_factory, "executor.cut=run", "executor.workers=7").to_dict()
    c = _config(tmp_path_factory, "executor.cut=run", "seed=1").to_dict()
    key = job_key(a, tmp_path, "x__transfer")
    assert key == job_key(b, tmp_path, "x__transfer")  # executor settings change no result
    assert key != job_key(c, tmp_path, "x__transfer")
    assert key != job_key(a, tmp_path / "other", "x__transfer")
    assert key != job_key(a, tmp_path, "x__scratch")
    # A baseline job carries settings the config does not hold (e.g. a CNN's weights,
    # which a resumed run may change): they enter its key.
    import dataclasses

    from pathnet_fer.baselines.jobs import BaselineJob
    from pathnet_fer.baselines.settings import BaselineSettings

    settings = BaselineSettings.from_dict({"weights": "mobilenet_v2=none"})
    one = BaselineJob("b", "s", 1, 1, settings, model="mobilenet_v2", mode="full")
    other = dataclasses.replace(one, settings=BaselineSettings())
    assert job_key(a, tmp_path, "b", one) == job_key(a, tmp_path, "b", dataclasses.replace(one))
    assert job_key(a, tmp_path, "b", one) != job_key(a, tmp_path, "b", other)


def test_cli_executor_options():
    import argparse

    from pathnet_fer.experiments.commands import _overrides, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["experiment", "small", "--executor", "dask"])
    assert "executor.kind=dask" in _overrides(args)
    args = parser.parse_args(["experiment", "small", "--address", "tcp://head:8786"])
    config = load_config("small", _overrides(args))
    assert (config.executor.kind, config.executor.address) == ("dask", "tcp://head:8786")


def test_killed_coordinator_resumes_with_the_same_command(reference, tmp_path_factory):
    import subprocess
    import sys

    import psutil

    out = tmp_path_factory.mktemp("coordinator") / "run"
    cache = tmp_path_factory.getbasetemp() / "cache"
    command = [sys.executable, "-m", "pathnet_fer.experiments", "experiment", "small"]
    command += ["--out", str(out), "--quiet", "--executor", "dask"]
    for item in [*TINY, f"cache_dir={cache}", "executor.cut=run"]:
        command += ["--set", item]
    proc = subprocess.Popen(command)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        # Sources come from the shared store (the reference trained them): run jobs only.
        done = [p for p in (out / "jobs").glob("*__*.json") if not p.name.startswith("source")]
        ckpts = list((out / "checkpoints").glob("*/state.pt"))
        if done and len(ckpts) > len(done):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the study ended before it could be interrupted"
    workers = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The LocalCluster's worker processes go with their coordinator: nothing keeps
    # writing into the run directory behind the next session's back.
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, alive
    finished = {p.name for p in (out / "jobs").glob("*__*.json")}
    subprocess.run(command, check=True, timeout=300)
    log = _log(out)
    assert "resuming" in log and f"({len(finished)} already finished)" in log
    pd.testing.assert_frame_equal(_metrics(out), reference)


def test_face_extraction_fans_out_over_the_cluster(tmp_path, require_data):
    import numpy as np
    from distributed import LocalCluster

    from pathnet_fer.datasets.loading import load_dataset
    from pathnet_fer.experiments.dask_faces import clips_to_extract, fan_out_on_cluster

    require_data("jaffe")
    with LocalCluster(n_workers=2, threads_per_worker=1, silence_logs=40) as cluster:
        config = load_config(
            "small",
            [
                "executor.kind=dask",
                f"executor.address={cluster.scheduler_address}",
                f"cache_dir={tmp_path / 'cluster-cache'}",
            ],
        )
        lines: list[str] = []
        counts = fan_out_on_cluster(config, ["jaffe"], log=lines.append)
    assert counts["jaffe"] > 150 and "extracted on the cluster" in lines[0]
    assert clips_to_extract(config, "jaffe")[3] == []  # every clip is in the cache now
    shared = load_dataset(config, "jaffe")
    assert shared.faces.report.processed == 0  # the coordinator only assembled the dataset
    local = load_dataset(
        load_config("small", [f"cache_dir={tmp_path / 'local-cache'}"]), "jaffe", workers=2
    )
    assert local.faces.report.processed == counts["jaffe"]
    np.testing.assert_array_equal(shared.x, local.x)
    np.testing.assert_array_equal(shared.y, local.y)
    assert list(shared.clips) == list(local.clips)


def test_cuda_studies_ask_each_job_for_a_gpu(tmp_path, tmp_path_factory):
    from pathnet_fer.experiments.dask_executor import wants_gpu

    assert wants_gpu("cuda") and wants_gpu("cuda:1") and not wants_gpu("cpu")
    config = _config(tmp_path_factory, "executor.kind=dask", "executor.cut=run", "device=cuda")
    executor = DaskExecutor.from_config(config, n_jobs=1)
    try:
        assert executor.gpu
        # The LocalCluster's workers offer one GPU each (as `dask worker --resources GPU=1`).
        workers = executor.client.scheduler_info()["workers"].values()
        assert [w["resources"] for w in workers] == [{"GPU": 1}]
        seen = {}
        executor.client.submit = lambda *args, **kwargs: seen.update(kwargs)  # no GPU here
        job = plan_jobs(config)[0]
        executor.submit(job, config, str(tmp_path))
        assert seen["resources"] == {"GPU": 1} and seen["retries"] == 0
        assert seen["key"] == job_key(config.to_dict(), tmp_path, job.job_id, job)
        executor._futures.clear()
    finally:
        executor.close()


def test_workers_get_back_glibc_dynamic_mmap_threshold(monkeypatch):
    from pathnet_fer.experiments.dask_executor import restore_malloc_speed

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert restore_malloc_speed() is False  # nothing to repair
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as Dask's nanny sets it
    assert restore_malloc_speed() is True
