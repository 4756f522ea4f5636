"""A run directory's identity and its single writer.

- ``.pathnet-fer-run``: a marker the tool writes into every run directory it creates
  (the run's name, when and by whom it was created, a random id). Only a directory carrying
  it is ever deleted (``--restart``); a folder that merely holds a ``config.yaml`` is not.
- ``cluster-marker.json``: on a Dask cluster, the proof a worker sees this directory.
- ``.lock``: held with an exclusive ``flock`` for as long as a command writes the run, so
  a second command on the same directory is refused with a message naming the holder
  (pid and host), instead of both interleaving their writes. The kernel releases the lock
  when the holder dies, however it dies.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STAGED_MODELS = "staged_models"
"""Where a run's jobs write their model files. ``models/`` holds what the run deploys,
each file written once at the end by the report's deploy step (``calibration.deploy_models``),
calibrated where held-out predictions allow."""
MARKER = ".pathnet-fer-run"
LOCK = ".lock"
CLUSTER_MARKER = "cluster-marker.json"
"""Written by a Dask coordinator, read by each worker before its job: the run directory
the worker sees is the one the coordinator writes (experiments/dask_executor.py)."""
MARKER_FORMAT = "pathnet-fer-run"


class RunDirLockedError(ValueError):
    """Another live command is writing this run directory (a ValueError like every other
    run directory that cannot be used, so commands report it in one line)."""


def staged_models(out: Path) -> Path:
    """The folder a run's jobs write model files into (``STAGED_MODELS``)."""
    return Path(out) / STAGED_MODELS


def deployed_path(out: Path, staged: Path) -> Path:
    """Where the deploy step writes the staged model file ``staged``: the same path under
    ``models/``."""
    return Path(out) / "models" / Path(staged).relative_to(staged_models(out))


def read_marker(out: Path) -> dict[str, Any] | None:
    """The marker's content, or None when ``out`` is not marked as a pathnet-fer run."""
    path = Path(out) / MARKER
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT:
        return None
    return data


def write_marker(out: Path, name: str) -> dict[str, Any]:
    """Mark ``out`` as a run directory of the experiment ``name`` (kept when present)."""
    existing = read_marker(out)
    if existing is not None:
        return existing
    data = {
        "format": MARKER_FORMAT,
        "name": name,
        "id": uuid.uuid4().hex,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
    }
    tmp = Path(out) / (MARKER + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(Path(out) / MARKER)
    return data


class RunLock:
    """Exclusive, non-blocking lock on ``out/.lock``; ``release()`` or use as a context."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirLockedError(
                f"{self.path.parent} is in use by another pathnet-fer command ({holder}); "
                "wait for it to finish or stop it, then run this command again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_me()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            finally:
                os.close(self._fd)  # closing drops the flock
                self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _me() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _read_holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        data = {}
    if not data:
        return "holder unknown"
    return f"pid {data.get('pid', '?')} on host {data.get('host', '?')}, since {data.get('since')}"


def clear_run_dir(out: Path) -> None:
    """Delete everything in a marked run directory except its lock (which we hold)."""
    if read_marker(out) is None:
        raise ValueError(f"{out} is not marked as a pathnet-fer run; refusing to delete it")
    for child in Path(out).iterdir():
        if child.name in (LOCK, MARKER):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    (Path(out) / MARKER).unlink()  # last: an interrupted clear stays restartable
