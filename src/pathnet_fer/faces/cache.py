"""On-disk cache of face crops: one compressed entry per clip, then one consolidated file.

Layout under ``<cache root>/<dataset>-<settings key>/``::

    settings.json                     the settings (and dataset) this directory holds
    clips/<file key>.npz              one clip: crops, frame indices, fallbacks, counts
    consolidated-<fingerprint>.npz    every crop of one scan, for fast loading
    manifest-<fingerprint>.csv        its manifest (one row per clip/image)

A clip's file key hashes its absolute path, size and modification time, so an edited or
replaced file is processed again while untouched files are read back. Every file is
written to a temporary name and renamed into place, so a run killed half-way leaves only
complete entries, and the next run resumes from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pathnet_fer.faces.extract import ClipFaces
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.paths import cache_root


def file_key(path: str | Path) -> str:
    """Identity of a file's current content: path + size + mtime (no reading needed).

    A file this process may not read gets another key: its "Permission denied" skip is
    cached under that key only, so once the permission is fixed (which changes neither
    size nor mtime) the file is processed instead of staying skipped from the cache."""
    path = os.path.abspath(path)  # no symlink resolution: 30k files in a fraction of a second
    try:
        stat = os.stat(path)
        identity = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
        if not os.access(path, os.R_OK):
            identity += "|unreadable"
    except OSError:
        identity = f"{path}|missing"
    return hashlib.sha1(identity.encode()).hexdigest()[:20]


def dataset_cache_dir(
    name: str, settings: FaceSettings, cache_dir: str | Path | None = None
) -> Path:
    """``<cache_dir or cache_root()>/<name>-<settings.key()>`` (settings must be resolved)."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return base / f"{safe}-{settings.key()}"


def _atomic_write(path: Path, write) -> None:
    """Write via ``write(file_object)`` to a temp file beside ``path``, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# What a damaged or half-written npz raises when read.
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


class FaceCache:
    """The cache directory of one dataset under one set of settings."""

    def __init__(self, directory: Path, settings: FaceSettings, name: str) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.name = name
        self.clips_dir = self.directory / "clips"

    def prepare(self) -> None:
        """Create the directory and record what it holds (for people browsing the cache)."""
        self.clips_dir.mkdir(parents=True, exist_ok=True)
        info = self.directory / "settings.json"
        if not info.exists():
            text = json.dumps({"dataset": self.name, "settings": self.settings.to_dict()}, indent=2)
            _atomic_write(info, lambda s: s.write(text.encode()))

    # ---- per-clip entries -------------------------------------------------------------
    def entry_path(self, key: str) -> Path:
        return self.clips_dir / f"{key}.npz"

    def started_marker(self, key: str) -> Path:
        """Empty file present while a worker processes the clip (crash forensics)."""
        return self.clips_dir / f"{key}.started"

    def has(self, key: str) -> bool:
        return self.entry_path(key).exists()

    def write_clip(self, key: str, path: str, faces: ClipFaces) -> None:
        meta = {
            "path": str(path),
            "status": faces.status,
            "reason": faces.reason,
            "n_frames": faces.n_frames,
            "n_detections": faces.n_detections,
            "n_multi": faces.n_multi,
            "n_dropped": faces.n_dropped,
        }
        arrays = {
            "images": faces.images,
            "frame_index": faces.frame_index,
            "fallback": faces.fallback,
            "boxes": faces.boxes,
            "meta": np.array(json.dumps(meta)),
        }
        _atomic_write(self.entry_path(key), lambda s: np.savez_compressed(s, **arrays))

    def read_clip(self, key: str) -> ClipFaces | None:
        """The cached clip, or None when absent or unreadable (then it is processed again)."""
        try:
            with np.load(self.entry_path(key), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                images = data["images"]
                if images.ndim < 1 or (len(images) and images.shape[1:] != self._crop_shape()):
                    return None  # an entry of other settings or damaged: process again
                if images.dtype != np.uint8 or len(data["frame_index"]) != len(images):
                    return None
                return ClipFaces(
                    images=images,
                    frame_index=data["frame_index"],
                    fallback=data["fallback"],
                    boxes=data["boxes"],
                    status=meta["status"],
                    reason=meta["reason"],
                    n_frames=meta["n_frames"],
                    n_detections=meta["n_detections"],
                    n_multi=meta.get("n_multi", 0),
                    n_dropped=meta.get("n_dropped", 0),
                )
        except UNREADABLE:
            return None

    def _crop_shape(self) -> tuple[int, ...]:
        size = int(self.settings.size)
        return (size, size, 3) if self.settings.colour == "rgb" else (size, size)

    # ---- consolidated file ------------------------------------------------------------
    @staticmethod
    def fingerprint(parts: Iterable[str]) -> str:
        digest = hashlib.sha1()
        for part in parts:
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()[:16]

    def prune_consolidated(self, keep: int = 4) -> None:
        """Delete all but the ``keep`` newest consolidated files (older scans of the folder).

        Per-clip entries stay: they are what a rebuild reads.
        """
        found = sorted(
            self.directory.glob("consolidated-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for stale in found[keep:]:
            fingerprint = stale.stem.removeprefix("consolidated-")
            for path in self.consolidated_paths(fingerprint):
                path.unlink(missing_ok=True)

    def consolidated_paths(self, fingerprint: str) -> tuple[Path, Path]:
        return (
            self.directory / f"consolidated-{fingerprint}.npz",
            self.directory / f"manifest-{fingerprint}.csv",
        )
