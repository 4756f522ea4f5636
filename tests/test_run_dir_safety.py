"""Run directories: only the tool's own are deleted, names stay inside runs/, one writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pathnet_fer.experiments.config import ConfigError
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.run_compat import RunDirError, RunDirInUseError, prepare_run_dir
from pathnet_fer.experiments.run_dir import LOCK, MARKER, RunLock, read_marker


def _prepare(config, out, restart=False):
    """prepare_run_dir as run_experiment calls it: lock taken inside, released after."""
    lock = RunLock(out)
    try:
        return prepare_run_dir(config, out, restart=restart, lock=lock)
    finally:
        lock.release()


@pytest.fixture(scope="module")
def config():
    return load_config("small", ["protocol.folds=2"])


def test_restart_never_deletes_a_folder_the_tool_did_not_mark(config, tmp_path) -> None:
    """A user's folder that happens to hold a config.yaml survives --restart."""
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "config.yaml").write_text(config.to_yaml())
    (folder / "chapter1.tex").write_text("precious")
    with pytest.raises(RunDirError, match=f"does not carry the marker.*{MARKER}"):
        _prepare(config, folder, restart=True)
    assert (folder / "chapter1.tex").read_text() == "precious"
    # a non-empty folder without config.yaml is refused as before, and not written to
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"x")
    with pytest.raises(RunDirError, match="not a pathnet-fer run directory"):
        _prepare(config, other, restart=True)
    assert sorted(p.name for p in other.iterdir()) == ["a.jpg"]


def test_restart_clears_a_marked_run_and_marks_the_new_one(config, tmp_path) -> None:
    out = tmp_path / "run"
    assert _prepare(config, out) is False
    first = read_marker(out)
    assert first is not None and first["name"] == config.name
    (out / "metrics.csv").write_text("old rows")
    other = load_config("small", ["protocol.folds=3"])
    with pytest.raises(RunDirError, match="(?s)different configuration.*--restart"):
        _prepare(other, out)
    assert _prepare(other, out, restart=True) is False
    assert not (out / "metrics.csv").exists()
    second = read_marker(out)
    assert second["id"] != first["id"]
    assert _prepare(other, out) is True  # resuming keeps the marker
    assert read_marker(out) == second


def test_unmarked_run_of_an_older_version_resumes_without_restart_hint(config, tmp_path) -> None:
    out = tmp_path / "old"
    out.mkdir()
    (out / "config.yaml").write_text(config.to_yaml())
    other = load_config("small", ["protocol.folds=3"])
    with pytest.raises(RunDirError, match="different configuration") as info:
        _prepare(other, out)
    assert "--restart" not in str(info.value)
    assert _prepare(config, out) is True  # same config: resumes
    assert read_marker(out) is not None


@pytest.mark.parametrize("name", ["..", ".", "../..", "/tmp/x", "a/b", "", "-x", "a b"])
def test_name_must_be_a_simple_folder_name(name) -> None:
    with pytest.raises(ConfigError, match="must be a simple folder name"):
        load_config("small", [f"name={json.dumps(name)}"])


def test_set_names_with_one_file_name_are_refused() -> None:
    sets = (
        "sets=[{source: ckplus48, destination: jaffe, name: 'x->y'},"
        " {source: jaffe, destination: ckplus48, name: x-to-y}]"
    )
    with pytest.raises(ConfigError, match="'x->y' and 'x-to-y' share the file name 'x-to-y'"):
        load_config("small", [sets])


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pathnet_fer.experiments.run_dir import RunLock
    RunLock(Path(sys.argv[1])).acquire()
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_second_command_on_a_run_dir_is_refused_naming_the_holder(config, tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirInUseError, match=f"in use by .*pid {holder.pid} on host"):
            prepare_run_dir(config, out, lock=RunLock(out))
        assert sorted(p.name for p in out.iterdir()) == [LOCK], "nothing written while locked"
    finally:
        holder.kill()
        holder.wait()
    # the kernel drops the lock of a killed holder: the directory is usable again
    assert _prepare(config, out) is False


def test_report_is_refused_while_another_command_writes_the_run(config, tmp_path, capsys) -> None:
    from pathnet_fer.cli import main

    out = tmp_path / "run"
    _prepare(config, out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["report", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {holder.pid}" in err[0], err
    finally:
        holder.kill()
        holder.wait()
