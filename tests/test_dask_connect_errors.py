"""Dask mistakes end in one line within a bound, never a hang or a raw traceback: a
missing or non-JSON scheduler file, an address that is the dashboard's port, a scheduler
without workers. Run through ``pathnet-fer experiment`` against a real LocalCluster (its
scheduler only: no worker processes), with the bounds set to 2-3 s."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("distributed")

from pathnet_fer.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def scheduler():
    """A live scheduler (and its dashboard) with no workers."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=0, processes=True, dashboard_address="127.0.0.1:0", silence_logs=40
    ) as cluster:
        yield cluster


def _experiment_within(seconds: float, tmp_path, *options: str) -> tuple[int, float]:
    """``pathnet-fer experiment small --executor dask ...``: (status, seconds taken);
    fails the test if it has not returned after ``seconds`` (the bug was a hang)."""
    argv = ["experiment", "small", "--executor", "dask", "--out", str(tmp_path / "run"),
            "--quiet", "--set", "executor.connect_timeout=2",
            "--set", "executor.worker_timeout=2", *options]  # fmt: skip
    result: dict = {}

    def target() -> None:
        try:
            result["status"] = main(argv)
        except BaseException as err:  # noqa: BLE001 - reported below
            result["error"] = err

    start = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s: {argv}"
    assert "error" not in result, result["error"]
    return result["status"], time.monotonic() - start


def _one_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_missing_scheduler_file_is_one_line_after_the_bound(tmp_path, require_data, capsys):
    require_data("ckplus48")
    typo = tmp_path / "typo.json"
    status, seconds = _experiment_within(60, tmp_path, "--scheduler-file", str(typo))
    assert status == 2 and seconds < 30
    line = _one_line(capsys)
    assert f"scheduler file {typo} does not exist (waited 2 s" in line
    assert not (tmp_path / "run").exists()


def test_scheduler_file_that_is_not_json_is_one_line(tmp_path, require_data, capsys):
    require_data("ckplus48")
    bad = tmp_path / "scheduler.json"
    bad.write_text("tcp://127.0.0.1:8786 <- not JSON")
    status, _ = _experiment_within(60, tmp_path, "--scheduler-file", str(bad))
    assert status == 2
    assert f"scheduler file {bad} is not a Dask scheduler file" in _one_line(capsys)


def test_dashboard_address_is_named_as_such(scheduler, tmp_path, require_data, capsys):
    require_data("ckplus48")
    port = scheduler.scheduler.http_server.port
    dashboard = f"tcp://127.0.0.1:{port}"
    status, seconds = _experiment_within(60, tmp_path, "--address", dashboard)
    assert status == 2 and seconds < 30
    line = _one_line(capsys)
    assert f"{dashboard} is a web server (HTTP), not a Dask scheduler" in line
    assert "dashboard" in line


def test_scheduler_without_workers_is_one_line_after_the_bound(
    scheduler, tmp_path, require_data, capsys
):
    require_data("ckplus48")
    address = scheduler.scheduler_address
    status, seconds = _experiment_within(60, tmp_path, "--address", address)
    assert status == 2 and seconds < 30
    line = _one_line(capsys)
    assert f"the Dask scheduler at {address} has no workers (waited 2 s" in line
    assert not (tmp_path / "run").exists()


def test_wait_bounds_are_validated(tmp_path):
    from pathnet_fer.experiments.config import ConfigError
    from pathnet_fer.experiments.config_loading import load_config

    for bad in ("0", "-1", "abc", "1.0e+30", ".inf"):
        with pytest.raises(ConfigError, match=r"executor\.connect_timeout"):
            load_config("small", [f"cache_dir={tmp_path}", f"executor.connect_timeout={bad}"])
