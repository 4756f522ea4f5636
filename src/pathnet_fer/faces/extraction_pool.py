"""Face extraction over a dataset's clips on a pool of worker processes: each clip's crops
written to the cache before it is reported, a dead worker's files retried once then
skipped with a reason, never a hang (spawned workers, each watching its parent)."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from tqdm.auto import tqdm

from pathnet_fer.faces.cache import FaceCache
from pathnet_fer.faces.dataset import BuildReport
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


def file_size(path: str) -> int:
    """Bytes of a file (0 when unreadable): the pool takes the longest first."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _mp_context() -> multiprocessing.context.BaseContext:
    # Not fork: a parent that already ran OpenCV or FFmpeg threads (a benchmark, a notebook,
    # the predictor) leaves their locks held in a forked child, which then hangs forever.
    return multiprocessing.get_context("spawn")


def extract_clips(
    tasks: list[tuple[int, str, str]],
    settings: FaceSettings,
    cache: FaceCache,
    name: str,
    workers: int,
    progress: bool,
    report: BuildReport,
) -> Iterator[tuple[int, ClipFaces]]:
    """``(position, crops)`` of every task ``(position, path, cache key)`` as it finishes
    (in this process when ``workers`` <= 1); worker deaths counted in ``report``."""
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
