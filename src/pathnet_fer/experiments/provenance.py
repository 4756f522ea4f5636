"""What a run directory records about how it was made: package versions, the git commit of
the checkout, the host it ran on, and a plain-text run log (log.txt) of what the
coordinator did.
"""

from __future__ import annotations

import os
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


HOST_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
"""CPU features that choose the convolution kernels (and so their rounding) on this CPU."""


def host() -> dict[str, object]:
    """The machine a run trains on. Why: the same code, data and seed evolve bit-identical
    weights on one host, and other weights on another VM of the same kind (its CPU's
    kernels round bfloat16 convolutions otherwise; docs/results-fer2013.md "The rebuild").
    A rebuild that should match a file must know where that file was trained."""
    import torch

    info: dict[str, object] = {
        "machine": platform.machine(),
        "system": platform.system(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    cpu = _cpuinfo()
    if cpu:
        info["cpu"] = " / ".join(
            f"{key} {cpu[key]}"
            for key in ("model name", "vendor_id", "cpu family", "model", "stepping", "microcode")
            if key in cpu
        )
        flags = set(cpu.get("flags", "").split())
        info["cpu_flags"] = [f for f in HOST_CPU_FLAGS if f in flags]
    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name(0)
    return info


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
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
