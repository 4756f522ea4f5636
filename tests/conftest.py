"""Shared fixtures: real data is found through one setting ($PATHNET_FER_DATA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathnet_fer.paths import CACHE_ENV, DATA_ENV, data_root


def _require(sub: str) -> Path:
    path = data_root() / sub
    if not path.exists():
        pytest.skip(f"real data {sub!r} not found under {data_root()} (set ${DATA_ENV})")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data root; skips the test when absent."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"shared data root {root} not found (set ${DATA_ENV})")
    return root


@pytest.fixture(scope="session")
def require_data():
    """``require_data("jaffe")`` -> path, or skip with the reason."""
    return _require


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """The whole test session caches face crops in its own temp dir, never in ~/.cache.

    Session-scoped so that module- and session-scoped fixtures see it too; one cache per
    session also lets tests reuse each other's crops.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "cache"))
        yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensor ops run faster on one thread on a shared 2-core machine.

    Module-scoped so a module's trained fixtures run on one thread too.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
