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
