"""A full disk (or read-only cache) is one clear line and a non-zero exit, no traceback."""

from __future__ import annotations

import errno

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
