"""What a run directory records about how it was made: package versions, the git commit of
the checkout, and a plain-text run log (log.txt) of what the coordinator did.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from pathnet_fer.paths import REPO_ROOT


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
        ("torchvision", "torchvision"),
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
