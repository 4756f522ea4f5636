"""A damaged crop cache is repaired, never trusted: truncated manifest, wrong-shape entry."""

from __future__ import annotations

import numpy as np
import pytest

from pathnet_fer.faces.cache import FaceCache, dataset_cache_dir, file_key
from pathnet_fer.faces.preprocess import preprocess_dataset
from pathnet_fer.faces.settings import FaceSettings

SETTINGS = FaceSettings(size=16, colour="grey")


@pytest.fixture
def built(require_data, tmp_path):
    root = require_data("ckplus48")

    def build():
        return preprocess_dataset(
            "ckplus48", root, SETTINGS, cache_dir=tmp_path, workers=1, progress=False
        )

    return build, build(), tmp_path


def test_truncated_manifest_is_rebuilt_not_trusted(built) -> None:
    build, first, cache_dir = built
    (manifest,) = dataset_cache_dir("ckplus48", first.settings, cache_dir).glob("manifest-*.csv")
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:11]))  # header + 10 clips beside all the crops
    again = build()
    assert not again.report.consolidated, "a truncated manifest must not be trusted"
    assert len(again.manifest) == len(first.manifest) and len(again) == len(first)
    assert np.array_equal(again.images, first.images)
    assert build().report.consolidated  # repaired: the next call reads it


def test_cache_entry_with_a_wrong_shape_is_processed_again(built) -> None:
    build, first, cache_dir = built
    clip = first.manifest[first.manifest.status == "ok"].iloc[0]
    cache = FaceCache(
        dataset_cache_dir("ckplus48", first.settings, cache_dir), first.settings, "ckplus48"
    )
    key = file_key(clip.path)
    good = cache.read_clip(key)
    bad = good.__class__(**{**good.__dict__, "images": np.zeros((len(good.images), 9, 9), "uint8")})
    cache.write_clip(key, clip.path, bad)
    for consolidated in cache.directory.glob("consolidated-*.npz"):
        consolidated.unlink()
    again = build()
    assert again.report.processed == 1
    assert np.array_equal(again.images, first.images)


def test_a_file_skipped_for_permission_is_processed_once_readable(
    require_data, tmp_path, monkeypatch
) -> None:
    """As root every file is readable, so the denial is simulated where it is observed."""
    import os

    import pathnet_fer.faces.cache as cache_module
    import pathnet_fer.faces.extraction_pool as pool_module

    root = require_data("ckplus48")
    target = str(sorted((root / "happy").glob("*.png"))[0])
    real_access, real_extract = os.access, pool_module.extract_faces

    def access(path, mode, *args, **kwargs):
        if os.path.abspath(path) == target:
            return False
        return real_access(path, mode, *args, **kwargs)

    def extract(path, *args, **kwargs):
        if str(path) == target:
            raise PermissionError(13, "Permission denied", target)
        return real_extract(path, *args, **kwargs)

    def build():
        return preprocess_dataset(
            "ckplus48", root, SETTINGS, cache_dir=tmp_path, workers=1, progress=False
        )

    with monkeypatch.context() as patch:
        patch.setattr(cache_module.os, "access", access)
        patch.setattr(pool_module, "extract_faces", extract)
        denied = build()
    row = denied.manifest[denied.manifest.path == target].iloc[0]
    assert row.status == "skipped" and "Permission denied" in row.reason
    fixed = build()  # the permission is fixed: same size, same mtime
    row = fixed.manifest[fixed.manifest.path == target].iloc[0]
    assert row.status == "ok", row.reason
    assert len(fixed) == len(denied) + 1


def test_a_second_builder_of_one_cache_waits_then_reads_it(require_data, tmp_path, capsys):
    import os
    import subprocess
    import sys
    import textwrap
    import time

    root = require_data("ckplus48")
    directory = dataset_cache_dir("ckplus48", SETTINGS.resolved(True), tmp_path)
    directory.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from pathlib import Path
                from pathnet_fer.faces.preprocess import cache_lock
                with cache_lock(Path({str(directory)!r}), "ckplus48"):
                    print("locked", flush=True)
                    time.sleep(3)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        dataset = preprocess_dataset(
            "ckplus48", root, SETTINGS, cache_dir=tmp_path, workers=1, progress=True
        )
        waited = time.monotonic() - start
    finally:
        holder.wait(timeout=30)
    assert "waiting for another process building this cache" in capsys.readouterr().err
    assert waited > 1.5 and len(dataset) > 0
