"""Where data, caches and runs live. One setting each, overridable by environment."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "PATHNET_FER_DATA"
CACHE_ENV = "PATHNET_FER_CACHE"

# src/pathnet_fer/paths.py -> repository root (meaningful for a source checkout).
REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """The shared data root: $PATHNET_FER_DATA, else ``../shared/data`` beside the checkout.

    The default is looked up relative to the current directory first, then relative to
    the repository root, so commands work from anywhere inside a checkout.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    for base in (Path.cwd(), REPO_ROOT):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def cache_root() -> Path:
    """Face-crop cache root: $PATHNET_FER_CACHE, else ``~/.cache/pathnet-fer``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return (base / "pathnet-fer").resolve()


def unwritable_reason(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (or the folders ``mkdir -p`` would make
    for it), or None when they can. Creates nothing that stays.

    The nearest existing folder is probed by creating and removing a temporary file:
    permission bits say nothing about read-only mounts, ACLs or root, and a run that
    learns this only when it writes its first result has wasted all the work before.
    """
    import tempfile

    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".pathnet-fer-probe-"):
            pass
    except OSError as error:
        return f"cannot write into {folder}: {error.strerror or error}"
    return None
