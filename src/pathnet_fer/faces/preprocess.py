"""Dataset on disk -> cached face crops (FaceDataset), in parallel over clips, resumable."""

from __future__ import annotations

import contextlib
import contextvars
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pathnet_fer.data.emotions import class_names as emotion_class_names
from pathnet_fer.data.registry import get_adapter
from pathnet_fer.faces.cache import UNREADABLE, FaceCache, dataset_cache_dir, file_key
from pathnet_fer.faces.dataset import BOX_COLUMNS, MANIFEST_COLUMNS, BuildReport, FaceDataset
from pathnet_fer.faces.detector import FaceDetector
from pathnet_fer.faces.extract import ClipFaces, extract_faces, skipped_faces
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.parent_watch import exit_with_parent

_worker_state: dict = {}


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _init_worker(
    settings: FaceSettings, cache_directory: str, name: str, threads: int | None = 1
) -> None:
    if threads is not None:
        import cv2

        # parallelism comes from the processes; OpenCV gets the cores left over (more
        # cores than clips), never more, to avoid oversubscription
        cv2.setNumThreads(threads)
    _worker_state["settings"] = settings
    _worker_state["cache"] = FaceCache(Path(cache_directory), settings, name)
    _worker_state["detector"] = FaceDetector(settings) if settings.detect else None


def _init_pool_worker(
    settings: FaceSettings, cache_directory: str, name: str, threads: int | None = 1
) -> None:
    """Initializer of a pool worker process (not of the in-process path)."""

    exit_with_parent()  # an orphan never keeps extracting (or idles) after a kill -9
    _init_worker(settings, cache_directory, name, threads)


def _process(task: tuple[int, str, str]) -> tuple[int, ClipFaces]:
    """Extract one clip and write its cache entry (atomically) before reporting it."""
    position, path, key = task
    settings: FaceSettings = _worker_state["settings"]
    cache: FaceCache = _worker_state["cache"]
    marker = cache.started_marker(key)
    marker.touch()  # if this process dies on this file, the parent knows which file it was
    try:
        faces = extract_faces(path, settings, _worker_state["detector"])
    except Exception as error:  # noqa: BLE001 - one bad clip must not end the run
        faces = skipped_faces(
            settings, "skipped", f"unexpected error: {type(error).__name__}: {error}"
        )
    cache.write_clip(key, path, faces)
    marker.unlink(missing_ok=True)
    return position, faces


def _process_chunk(chunk: list[tuple[int, str, str]]) -> list[tuple[int, ClipFaces]]:
    return [_process(task) for task in chunk]


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _mp_context() -> multiprocessing.context.BaseContext:
    # Not fork: a parent that already ran OpenCV or FFmpeg threads (a benchmark, a notebook,
    # the predictor) leaves their locks held in a forked child, which then hangs forever.
    return multiprocessing.get_context("spawn")


def _run(
    tasks: list[tuple[int, str, str]],
    settings: FaceSettings,
    cache: FaceCache,
    name: str,
    workers: int,
    progress: bool,
    report: BuildReport,
) -> Iterator[tuple[int, ClipFaces]]:
    bar = tqdm(
        total=len(tasks),
        desc=f"faces {name}",
        unit="clip",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        if workers <= 1 or len(tasks) <= 1:
            _init_worker(settings, str(cache.directory), name, threads=None)
            for task in tasks:
                yield _process(task)
                bar.update()
            return
        for marker in cache.clips_dir.glob("*.started"):  # left by an earlier killed run
            marker.unlink(missing_ok=True)
        strikes: dict[int, int] = {}
        stalls = 0  # pool failures in a row in which no worker even started a file
        remaining = list(tasks)
        while remaining:
            done: set[int] = set()
            try:
                for position, faces in _pool_run(remaining, settings, cache, name, workers):
                    done.add(position)
                    yield position, faces
                    bar.update()
                remaining = []
            except BrokenProcessPool:
                report.worker_deaths += 1
                started = any(cache.started_marker(t[2]).exists() for t in remaining)
                stalls = 0 if done or started else stalls + 1
                if stalls >= STARTUP_FAILURES:
                    raise RuntimeError(STARTUP_DIED) from None
                # A worker died (a crash inside FFmpeg/OpenCV, or the out-of-memory
                # killer). The files it was on are retried once; a second death skips them.
                retry = []
                for task in remaining:
                    position, path, key = task
                    if position in done:
                        continue
                    if not cache.started_marker(key).exists():
                        retry.append(task)
                        continue
                    cache.started_marker(key).unlink(missing_ok=True)
                    strikes[position] = strikes.get(position, 0) + 1
                    if strikes[position] < 2:
                        retry.append(task)
                        continue
                    faces = skipped_faces(settings, "skipped", WORKER_DIED)
                    cache.write_clip(key, path, faces)
                    yield position, faces
                    bar.update()
                remaining = retry
    finally:
        bar.close()


STARTUP_FAILURES = 3
STARTUP_DIED = (
    "face extraction worker processes die at start-up, before processing any file; "
    'in a script, call preprocessing under `if __name__ == "__main__":` (workers are '
    "started with spawn and import the script again), or pass workers=1"
)
WORKER_DIED = (
    "the worker process died twice while processing this file "
    "(a crash in the video decoder or the detector, or out of memory)"
)


def _pool_run(
    tasks: list[tuple[int, str, str]],
    settings: FaceSettings,
    cache: FaceCache,
    name: str,
    workers: int,
) -> Iterator[tuple[int, ClipFaces]]:
    """Results as they finish; raises BrokenProcessPool when a worker process dies."""
    processes = min(workers, len(tasks))
    threads = max(1, default_workers() // processes)
    size = max(1, min(32, len(tasks) // (processes * 8)))  # images: fewer round trips
    chunks = [tasks[i : i + size] for i in range(0, len(tasks), size)]
    with ProcessPoolExecutor(
        processes,
        mp_context=_mp_context(),
        initializer=_init_pool_worker,
        initargs=(settings, str(cache.directory), name, threads),
    ) as executor:
        futures = [executor.submit(_process_chunk, chunk) for chunk in chunks]
        try:
            for future in as_completed(futures):
                yield from future.result()
        finally:
            for future in futures:
                future.cancel()


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
    todo.sort(key=lambda task: -_size(task[1]))  # longest first: workers finish together
    for position, faces in _run(todo, settings, cache, name, workers, progress, report):
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
