"""Every target the Makefile declares does something (`make bench`, `make weights`)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pathnet_fer.paths import REPO_ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_every_phony_target_has_commands(tmp_path) -> None:
    makefile = REPO_ROOT / "Makefile"
    phony = re.search(r"^\.PHONY:(.*)$", makefile.read_text(), re.M).group(1).split()
    stamp = tmp_path / "venv" / ".installed"
    stamp.parent.mkdir()
    stamp.touch()  # the venv looks installed: -n shows the target's own commands only
    for target in (t for t in phony if t != "setup"):  # setup: nothing once installed
        out = subprocess.run(
            ["make", "-n", "-f", str(makefile), f"VENV={stamp.parent}", "-o", str(stamp), target],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        assert "Nothing to be done" not in out.stdout + out.stderr, target
    out = subprocess.run(
        ["make", "-n", "-f", str(makefile), f"VENV={stamp.parent}", "-o", str(stamp), "bench"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert "benchmarks/bench_pathnet.py" in out
