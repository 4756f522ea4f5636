"""A full disk (or read-only cache) is one clear line and a non-zero exit, no traceback."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pathnet_fer.cli import main


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_disk_full_while_preprocessing_is_one_line(
    code, require_data, tmp_path, monkeypatch, capsys
):
    import pathnet_fer.faces.cache as cache

    def full(path, write):
        raise OSError(code, "simulated", str(path))

    monkeypatch.setattr(cache, "_atomic_write", full)
    root = require_data("jaffe")
    argv = [
        "preprocess",
        "--dataset",
        "jaffe",
        "--root",
        str(root),
        "--cache",
        str(tmp_path),
        "--workers",
        "1",
    ]
    assert main([*argv, "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert str(tmp_path) in err[0] and "re-run the same command" in err[0]


def test_experiment_out_in_a_folder_it_cannot_write_is_one_line(tmp_path, monkeypatch, capsys):
    """``--out`` under a read-only folder: one line before any face is cropped (root gets
    EPERM from /sys, a user EACCES from a chmod-ed folder), never a traceback."""
    import os

    import pathnet_fer.experiments.runner as runner

    def no_cropping(*args, **kwargs):
        raise AssertionError("faces were loaded before --out was checked")

    monkeypatch.setattr(runner, "load_dataset", no_cropping)

    if os.geteuid() == 0:
        parent = Path("/sys")
    else:
        parent = tmp_path / "locked"
        parent.mkdir()
        parent.chmod(0o555)
    try:
        status = main(["experiment", "demo", "--out", str(parent / "run"), "--quiet"])
    finally:
        if parent != Path("/sys"):
            parent.chmod(0o755)
    assert status == 2  # the experiment command's "refused" status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert str(parent / "run") in err[0] and "cannot write into" in err[0]
