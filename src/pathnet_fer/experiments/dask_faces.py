"""Face extraction fanned out over a Dask cluster: one task per batch of clips.

With ``executor.kind: dask`` and a running scheduler (``executor.address`` or
``executor.scheduler_file``), the coordinator first sends every clip that is not in the
face-crop cache yet to the cluster, in batches; each task extracts its clips exactly as
the local preprocessing does (``faces.extract.extract_faces``) and writes their cache
entries. The cache (on storage every worker sees) is the shared result: the coordinator's
usual ``load_dataset`` then finds every clip cached and only assembles the dataset. A
LocalCluster gains nothing over the local process pool, which preprocessing already uses.

A worker that sees neither the dataset nor the cache fails its task at once (it would
otherwise record every clip as unreadable): the data root and the cache must be shared.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pathnet_fer.data.emotions import class_names
from pathnet_fer.data.registry import get_adapter
from pathnet_fer.datasets.loading import face_settings_for
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.dask_connect import connect
from pathnet_fer.experiments.dask_executor import restore_malloc_speed
from pathnet_fer.faces.cache import FaceCache, dataset_cache_dir, file_key
from pathnet_fer.faces.detector import FaceDetector
from pathnet_fer.faces.extract import extract_faces, skipped_faces

CACHE_MARKER = "cluster-marker.txt"


class SharedStorageError(RuntimeError):
    """A worker cannot see the dataset or the face-crop cache."""


def _extract_batch(
    tasks: list[tuple[str, str]],
    settings: Any,
    cache_directory: str,
    name: str,
    root: str,
    token: str,
    threads: int = 1,
) -> int:
    """Extract ``(path, key)`` clips into the cache; returns how many were written."""
    import cv2

    marker = Path(cache_directory) / CACHE_MARKER
    seen = marker.read_text() if marker.exists() else None
    if not Path(root).is_dir() or seen != token:
        raise SharedStorageError(
            f"worker {socket.gethostname()} (pid {os.getpid()}) cannot see "
            f"{'the dataset ' + root if not Path(root).is_dir() else 'the cache ' + cache_directory}:"
            " the data root and the face-crop cache must be on storage every worker mounts "
            "at the same path"
        )
    cv2.setNumThreads(threads)

    restore_malloc_speed()
    cache = FaceCache(Path(cache_directory), settings, name)
    detector = FaceDetector(settings) if settings.detect else None
    for path, key in tasks:
        try:
            faces = extract_faces(path, settings, detector)
        except Exception as error:  # noqa: BLE001 - one bad clip must not end the run
            faces = skipped_faces(
                settings, "skipped", f"unexpected error: {type(error).__name__}: {error}"
            )
        cache.write_clip(key, path, faces)
    return len(tasks)


def clips_to_extract(config: ExperimentConfig, name: str):
    """``(settings, cache, root, [(path, key), ...])``: the clips of dataset ``name`` not
    cached yet, largest first (as the local preprocessing orders them)."""

    spec = config.datasets[name]
    adapter = get_adapter(spec.adapter)
    root = config.dataset_root(name)
    scan = adapter.scan(root, keep_neutral=spec.keep_neutral)
    settings = face_settings_for(config, name).resolved(bool(adapter.pre_cropped))
    cache = FaceCache(
        dataset_cache_dir(adapter.name, settings, config.cache_dir), settings, adapter.name
    )
    wanted = set(class_names(spec.keep_neutral))
    todo: dict[str, str] = {}
    keys: set[str] = set()
    samples = scan.samples
    for path, emotion in zip(samples["path"].astype(str), samples["emotion"], strict=True):
        if emotion in wanted:
            key = file_key(path)
            if key not in keys and not cache.has(key):
                todo[path] = key
                keys.add(key)

    def size(path: str) -> int:
        try:
            return os.stat(path).st_size
        except OSError:
            return 0

    ordered = sorted(todo.items(), key=lambda item: -size(item[0]))
    return settings, cache, root, ordered


def fan_out_faces(
    client,
    config: ExperimentConfig,
    names: list[str],
    batch: int = 16,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Extract every uncached clip of ``names`` on the cluster; returns clips per dataset."""
    from distributed import wait

    out = {}
    for name in dict.fromkeys(m for n in names for m in config.members(n)):  # unions: members
        settings, cache, root, todo = clips_to_extract(config, name)
        out[name] = len(todo)
        if not todo:
            continue
        cache.prepare()
        token = hashlib.sha256(f"{time.time_ns()}-{os.getpid()}".encode()).hexdigest()[:16]
        (cache.directory / CACHE_MARKER).write_text(token)
        batches = [todo[i : i + batch] for i in range(0, len(todo), batch)]
        t0 = time.perf_counter()
        futures = [
            client.submit(
                _extract_batch,
                chunk,
                settings,
                str(cache.directory),
                cache.name,
                str(root),
                token,
                config.executor.threads,
                key=f"pathnet-fer-faces-{cache.directory.name}-{token}-{i}",
            )
            for i, chunk in enumerate(batches)
        ]
        wait(futures)
        errors = [f.exception() for f in futures if f.status == "error"]
        if errors:
            raise errors[0]
        log(
            f"faces {name}: {len(todo)} clips extracted on the cluster in {len(batches)} "
            f"tasks ({time.perf_counter() - t0:.1f} s)"
        )
    return out


def fan_out_on_cluster(
    config: ExperimentConfig, names: list[str], log: Callable[[str], None] = print
) -> dict[str, int]:
    """``fan_out_faces`` on the running scheduler ``config.executor`` names."""

    e = config.executor
    client = connect(  # bounded waits, one line per mistake (DaskConnectError)
        e.address,
        e.scheduler_file,
        connect_timeout=e.connect_timeout,
        worker_timeout=e.worker_timeout,
        log=log,
    )
    with client:
        return fan_out_faces(client, config, names, log=log)
