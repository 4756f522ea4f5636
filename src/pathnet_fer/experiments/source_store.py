"""The shared store of source artifacts: a source unit's evolved paths and readouts, saved once
under a content key (data, rows, settings, seed, and the code that trains) and reused by
every study that needs the same unit (protocol.reuse_sources); each artifact carries a
digest checked on load.

The key holds ``code_fingerprint()``: a hash of the source files of the packages that turn
data, settings and a seed into weights (``TRAINING_PACKAGES``). A change there (how a path
trains, how a task's final path is chosen) makes new keys, so a study never reuses a
source the current code would not have evolved; ``protocol.reuse_sources=false`` also
trains afresh without consulting the store.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

import pathnet_fer
from pathnet_fer.datasets.loading import LoadedDataset
from pathnet_fer.evolution import EvolutionConfig
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.datasets import data_fingerprint
from pathnet_fer.experiments.phases import Phase
from pathnet_fer.experiments.plan import JobSpec
from pathnet_fer.paths import cache_root
from pathnet_fer.safe_load import load_plain

TRAINING_PACKAGES = ("pathnet", "evolution")
"""Sub-packages of pathnet_fer whose code decides a source unit's weights."""

FORMAT = "pathnet-fer-source"
VERSION = 2
"""v2: an artifact carries ``content_sha256``. The version is part of every key, so v1
entries of a store are never looked up again (they may be deleted)."""


class ArtifactError(ValueError):
    """A source artifact that cannot be trusted: unreadable, of another key, or edited."""


# --------------------------------------------------------------------------- identity
def source_key(
    config: ExperimentConfig, job: JobSpec, data: LoadedDataset, phase: Phase, net_config: Any
) -> tuple[str, dict[str, Any]]:
    """The artifact key of a source unit and the identity it hashes."""

    rd = phase.data[0]
    device = "cuda" if str(config.device).startswith("cuda") else str(config.device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    identity = {
        "format": [FORMAT, VERSION, pathnet_fer.__version__],
        "code": code_fingerprint(),
        "data": data_fingerprint(data),
        "train_rows": hashlib.blake2b(rd.train_index.astype(np.int64).tobytes()).hexdigest(),
        "test_rows": hashlib.blake2b(rd.test_index.astype(np.int64).tobytes()).hexdigest(),
        "pathnet": net_config.to_dict(),
        "evolution": EvolutionConfig.from_dict(
            {**config.evolution, "generations": phase.generations}
        ).to_dict(),
        "seed": [job.seed, phase.seed],
        "device": device,
        "evaluation": [config.protocol.eval_every, config.protocol.clip_vote],
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24], identity


@functools.cache
def code_fingerprint() -> str:
    """sha256 over the ``.py`` files of ``TRAINING_PACKAGES`` (relative names and bytes,
    in sorted order): changes with any edit to the code that trains a source."""
    root = Path(pathnet_fer.__file__).resolve().parent
    h = hashlib.sha256()
    for package in TRAINING_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(path.read_bytes())
            h.update(b"\0")
    return h.hexdigest()[:16]


def store_dir(config: ExperimentConfig) -> Path:
    """The shared store of source artifacts (beside the face-crop cache)."""
    base = Path(config.cache_dir).expanduser() if config.cache_dir else cache_root()
    return base / "sources"


def save_artifact(path: Path, artifact: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(artifact, tmp)
    os.replace(tmp, path)


def content_digest(artifact: dict[str, Any]) -> str:
    """sha256 over everything an artifact holds but its digest: names, plain values and
    tensor bytes, in a fixed order (independent of how torch laid the file out)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in artifact.items() if k != "content_sha256"})
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, dict):
        h.update(f"dict{len(value)}:".encode())
        for k in sorted(value, key=str):
            _feed(h, str(k))
            _feed(h, value[k])
    elif isinstance(value, list | tuple):
        h.update(f"list{len(value)}:".encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"tensor{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    else:  # str, int, float, bool, None (all an artifact holds besides the above)
        text = repr(value).encode()
        h.update(f"{type(value).__name__}{len(text)}:".encode())
        h.update(text)


def load_artifact(path: Path, key: str | None = None) -> dict[str, Any]:
    """Read a source artifact and verify it is the one ``key`` (default: the file's
    name) names; ``ArtifactError`` in one line naming the file otherwise."""
    path = Path(path)
    key = path.stem if key is None else key
    if not path.is_file():
        raise ArtifactError(f"{path} is missing")
    try:
        artifact = load_plain(path, "pathnet-fer source artifact")
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        reason = (str(exc).splitlines() or [""])[0].split(". ")[0][:160]
        raise ArtifactError(
            f"{path} is damaged (unreadable: {type(exc).__name__}: {reason})"
        ) from None
    if not isinstance(artifact, dict) or artifact.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a pathnet-fer source artifact")
    if artifact.get("version") != VERSION:
        raise ArtifactError(
            f"{path} has artifact version {str(artifact.get('version'))[:20]}; this code "
            f"reads {VERSION}"
        )
    if artifact.get("key") != key:
        raise ArtifactError(
            f"{path} holds the artifact of key {str(artifact.get('key'))[:40]}, not {key} "
            "(copied or moved over it)"
        )
    if artifact.get("content_sha256") != content_digest(artifact):
        raise ArtifactError(
            f"{path} does not match its content checksum (edited or damaged after it was written)"
        )
    return artifact


def reuse_run_copy(local: Path, key: str, problems: list[str]) -> dict[str, Any] | None:
    """This run's verified copy of the artifact, or None (a damaged one noted)."""
    if not local.exists():
        return None
    try:
        return load_artifact(local, key)
    except ArtifactError as exc:
        problems.append(f"this run's copy {exc}")
        return None


def reuse_store_entry(
    shared: Path, local: Path, key: str, problems: list[str]
) -> dict[str, Any] | None:
    """The store's verified artifact, copied into the run (the copy is what is verified,
    so the run holds exactly what was checked), or None (a damaged entry noted)."""
    if not shared.exists():
        return None
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f"{local.name}.{os.getpid()}.copy")
    try:
        shutil.copyfile(shared, tmp)
        artifact = load_artifact(tmp, key)
    except (ArtifactError, OSError) as exc:
        reason = (
            str(exc).removeprefix(str(tmp))
            if isinstance(exc, ArtifactError)
            else f" could not be copied into the run ({exc.strerror or exc})"
        )
        problems.append(f"source store entry {shared}{reason}")
        tmp.unlink(missing_ok=True)
        return None
    os.replace(tmp, local)
    return artifact
