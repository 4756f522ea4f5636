"""Dataset on disk -> cached face crops (FaceDataset), in parallel over clips, resumable."""

from __future__ import annotations

import contextlib
import contextvars
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from pathnet_fer.data.emotions import class_names as emotion_class_names
from pathnet_fer.data.registry import get_adapter
from pathnet_fer.faces.cache import UNREADABLE, FaceCache, dataset_cache_dir, file_key
from pathnet_fer.faces.dataset import BOX_COLUMNS, MANIFEST_COLUMNS, BuildReport, FaceDataset
from pathnet_fer.faces.extract import ClipFaces, skipped_faces
from pathnet_fer.faces.extraction_pool import (
    STARTUP_DIED,
    default_workers,
    extract_clips,
    file_size,
)
from pathnet_fer.faces.settings import FaceSettings


class NotCachedError(LookupError):
    """Inside ``cached_only()``: the crops would have to be built."""


_CACHED_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("cached_only", default=False)


@contextlib.contextmanager
def cached_only() -> Iterator[None]:
    """Within this block preprocessing only reads complete cached crops; anything that
    would decode a file or write the cache raises ``NotCachedError`` (``--dry-run``)."""
    token = _CACHED_ONLY.set(True)
    try:
        yield
    finally:
        _CACHED_ONLY.reset(token)


@contextlib.contextmanager
def cache_lock(directory: Path, name: str, progress: bool = True) -> Iterator[None]:
    """Exclusive lock on a dataset's cache directory; waits (saying so) for a holder."""
    import fcntl
    import json
    import socket

    fd = os.open(Path(directory) / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace") or "unknown"
            if progress:
                print(
                    f"faces {name}: waiting for another process building this cache ({holder}) ...",
                    file=sys.stderr,
                    flush=True,
                )
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
        yield
    finally:
        os.close(fd)  # drops the lock


def preprocess_dataset(
    name: str,
    root: str | Path,
    settings: FaceSettings | None = None,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    keep_neutral: bool = False,
    progress: bool = True,
) -> FaceDataset:
    """Scan dataset ``name`` under ``root`` with its adapter and return its face crops.

    Reads the cache when the same files were processed with the same settings before;
    only new or changed files are decoded. ``settings.detect=None`` takes the dataset's
    default (no detection for pre-cropped datasets). ``workers`` defaults to all cores.
    """

    adapter = get_adapter(name)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a folder")
    scan = adapter.scan(root, keep_neutral=keep_neutral)
    settings = (settings or FaceSettings()).resolved(bool(adapter.pre_cropped))
    dataset = preprocess_samples(
        scan.samples,
        adapter.name,
        settings,
        skipped=scan.skipped,
        cache_dir=cache_dir,
        workers=workers,
        keep_neutral=keep_neutral,
        progress=progress,
    )
    dataset.report.warnings = list(getattr(scan, "warnings", []) or [])
    return dataset


def preprocess_samples(
    samples: pd.DataFrame,
    name: str,
    settings: FaceSettings,
    skipped: pd.DataFrame | None = None,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    keep_neutral: bool = False,
    progress: bool = True,
) -> FaceDataset:
    """Face crops of a sample table (the adapters' ``ScanResult.samples`` columns).

    ``skipped`` (columns ``path, reason``) are files the scan already rejected; they are
    carried into the manifest so every problem is reported in one place.
    """
    started = time.perf_counter()
    if settings.detect is None:
        raise ValueError("settings.detect is None: resolve it with settings.resolved(pre_cropped)")
    names = emotion_class_names(keep_neutral)
    samples = samples.reset_index(drop=True)
    skipped = skipped if skipped is not None else pd.DataFrame(columns=["path", "reason"])
    cache = FaceCache(dataset_cache_dir(name, settings, cache_dir), settings, name)
    paths = samples["path"].astype(str).tolist()
    keys = [file_key(p) for p in paths]
    fingerprint = cache.fingerprint(
        [
            settings.key(),
            ",".join(names),
            samples[["path", "clip", "subject", "emotion"]].to_csv(index=False),
            *keys,
            skipped[["path", "reason"]].to_csv(index=False),
        ]
    )
    images_path, manifest_path = cache.consolidated_paths(fingerprint)
    workers = default_workers() if workers is None else max(1, int(workers))
    report = BuildReport(cache_dir=str(cache.directory), workers=workers)

    def consolidated() -> FaceDataset | None:
        if not (images_path.exists() and manifest_path.exists()):
            return None
        try:
            dataset = FaceDataset.load(images_path, manifest_path, settings, name)
        except UNREADABLE:
            return None  # damaged consolidated file: rebuild it from the clip entries
        if len(dataset.manifest) != len(samples) + len(skipped):
            return None  # a manifest missing rows (truncated): rebuild it too
        report.consolidated = True
        report.from_cache = len(samples)
        report.seconds = time.perf_counter() - started
        dataset.report = report
        return dataset

    dataset = consolidated()
    if dataset is not None:
        return dataset
    if _CACHED_ONLY.get():
        raise NotCachedError(f"the face crops of {name} are not cached yet ({cache.directory})")
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # A spawned worker re-running the caller's script (no main guard): building here
        # would wait for the parent's lock forever; fail so the parent reports it.
        raise RuntimeError(STARTUP_DIED)
    cache.prepare()
    # One builder per cache directory: a second command (or a worker) waits, then reads
    # what the first built instead of decoding everything again beside it.
    with cache_lock(cache.directory, name, progress):
        dataset = consolidated()
        if dataset is not None:
            return dataset
        return _build(
            samples, skipped, paths, keys, names, settings, cache, name, workers, progress,
            report, started, images_path, manifest_path,
        )  # fmt: skip


def _build(
    samples, skipped, paths, keys, names, settings, cache, name, workers, progress, report,
    started, images_path, manifest_path,
) -> FaceDataset:  # fmt: skip
    """Decode what the clip cache lacks, assemble, write the consolidated file."""
    results: dict[int, ClipFaces] = {}
    label_ok = samples["emotion"].isin(names).to_numpy()
    todo: list[tuple[int, str, str]] = []
    queued: set[str] = set()
    for position, (path, key) in enumerate(zip(paths, keys, strict=True)):
        if not label_ok[position]:
            continue
        cached = cache.read_clip(key) if cache.has(key) else None
        if cached is not None:
            results[position] = cached
            report.from_cache += 1
        elif key not in queued:
            queued.add(key)
            todo.append((position, path, key))
    todo.sort(key=lambda task: -file_size(task[1]))  # longest first: workers finish together
    for position, faces in extract_clips(todo, settings, cache, name, workers, progress, report):
        results[position] = faces
        report.processed += 1
    # the same file listed twice: read its entry once it exists
    for position, key in enumerate(keys):
        if label_ok[position] and position not in results:
            results[position] = cache.read_clip(key)

    dataset = _assemble(samples, skipped, results, label_ok, names, settings, name)
    dataset.save(images_path, manifest_path)
    cache.prune_consolidated()
    report.seconds = time.perf_counter() - started
    dataset.report = report
    return dataset


def _assemble(
    samples: pd.DataFrame,
    skipped: pd.DataFrame,
    results: dict[int, ClipFaces],
    label_ok: np.ndarray,
    names: tuple[str, ...],
    settings: FaceSettings,
    name: str,
) -> FaceDataset:
    """Stack per-clip crops in sample order; build the frame table and the manifest."""
    rows = []
    image_blocks: list[np.ndarray] = []
    counts: list[int] = []
    frame_index: list[np.ndarray] = []
    fallback: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    for position, sample in enumerate(samples.itertuples(index=False)):
        faces = results.get(position)
        if faces is None and label_ok[position]:  # a duplicate whose entry became unreadable
            faces = skipped_faces(
                settings, "skipped", "cache entry unreadable; run again to redo it"
            )
        row = {
            "path": sample.path,
            "clip": sample.clip,
            "subject": sample.subject,
            "emotion": sample.emotion,
        }
        if not label_ok[position]:
            row.update(
                status="skipped",
                reason=f"emotion {sample.emotion!r} is not one of the classes {list(names)}",
                n_frames=0,
                n_detections=0,
                n_fallback=0,
                n_crops=0,
                n_multi=0,
                n_dropped=0,
            )
        else:
            ok = faces.status == "ok" and faces.n_crops > 0
            row.update(
                status="ok" if ok else "skipped",
                reason=faces.reason if not ok else "",
                n_frames=faces.n_frames,
                n_detections=faces.n_detections,
                n_fallback=faces.n_fallback if ok else 0,
                n_crops=faces.n_crops if ok else 0,
                n_multi=faces.n_multi,
                n_dropped=faces.n_dropped,
            )
            if ok:
                image_blocks.append(faces.images)
                counts.append(faces.n_crops)
                frame_index.append(faces.frame_index)
                fallback.append(faces.fallback)
                boxes.append(faces.boxes)
        rows.append(row)
    for item in skipped.itertuples(index=False):
        rows.append(
            {
                "path": str(item.path),
                "clip": "",
                "subject": "",
                "emotion": "",
                "status": "skipped",
                "reason": str(item.reason),
                "n_frames": 0,
                "n_detections": 0,
                "n_fallback": 0,
                "n_crops": 0,
                "n_multi": 0,
                "n_dropped": 0,
            }
        )
    manifest = pd.DataFrame(rows, columns=[*MANIFEST_COLUMNS, "n_multi", "n_dropped"])

    ok_rows = manifest.iloc[: len(samples)]
    ok_rows = ok_rows[ok_rows["status"] == "ok"]
    repeat = np.asarray(counts, dtype=np.int64)
    frames = pd.DataFrame(
        {
            "clip": np.repeat(ok_rows["clip"].to_numpy(dtype=str), repeat),
            "subject": np.repeat(ok_rows["subject"].to_numpy(dtype=str), repeat),
            "emotion": np.repeat(ok_rows["emotion"].to_numpy(dtype=str), repeat),
            "label": np.repeat(
                np.array([names.index(e) for e in ok_rows["emotion"]], dtype=np.int64), repeat
            ),
            "frame_index": np.concatenate(frame_index) if frame_index else np.zeros(0, np.int32),
            "fallback": np.concatenate(fallback) if fallback else np.zeros(0, bool),
        }
    )
    box_array = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.int32)
    for column, values in zip(BOX_COLUMNS, box_array.T, strict=True):
        frames[column] = values
    if image_blocks:
        images = np.concatenate(image_blocks)
    else:
        shape = (0, settings.size, settings.size) + ((3,) if settings.colour == "rgb" else ())
        images = np.zeros(shape, dtype=np.uint8)
    return FaceDataset(images, frames, manifest, names, settings, name)
