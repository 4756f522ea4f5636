"""Source-task models of the baselines, trained once and reused.

A fine-tuned or zero-shot baseline starts from a model trained on the set's source task.
When that task does not depend on the destination fold (another dataset with a single
fold, e.g. FER-2013's fixed train/test split), one model per iteration serves every
destination fold: it is kept in memory for the run, and saved under the baseline run
directory (``source_models/<kind>-<key>.pt``) with a key hashing everything it depends
on: the source rows and labels (a fingerprint of the arrays), the model's configuration,
the budget in samples, the optimiser settings and the seed. The same command run again
loads it; any changed setting gives another key and a fresh training.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from pathnet_fer.baselines.sgd_training import TrainingLog, train_sgd
from pathnet_fer.formats.model_file import save_atomically
from pathnet_fer.safe_load import load_plain

FORMAT = "pathnet-fer-baseline-source-model"
VERSION = 1  # bump when a source model's training changes meaning


def fingerprint(x: np.ndarray, y: np.ndarray, class_names: tuple[str, ...]) -> str:
    """A digest of a source task's rows, labels and class names."""
    h = hashlib.blake2b(digest_size=20)
    for array in (np.ascontiguousarray(x), np.ascontiguousarray(y)):
        h.update(f"{array.dtype}{array.shape}".encode())
        h.update(memoryview(array).cast("B"))
    h.update(json.dumps(list(class_names)).encode())
    return h.hexdigest()


def source_key(**parts: Any) -> str:
    """The cache key of a source model: a digest of ``parts`` (JSON, sorted keys)."""
    text = json.dumps({"format": FORMAT, "version": VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class SourceModel:
    """A model trained on a source task (its readout: the source's classes)."""

    kind: str  # "mlp" | "cnn"
    key: str
    model: nn.Module
    class_names: tuple[str, ...]
    log: TrainingLog
    seconds: float
    status: str  # "trained" | "saved" (loaded from the run dir) | "memory"
    path: Path | None = None


def train_source(
    model: nn.Module, x: np.ndarray, y: np.ndarray, samples: int, **sgd: Any
) -> TrainingLog:
    """Train a source model in place (SGD, ``samples`` samples): the one place a baseline's
    source task is trained, so a test can count how often it happens."""
    return train_sgd(model, x, y, samples, **sgd)


class SourceModels:
    """Source models by key: in memory for the run, on disk under ``directory``."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.memory: dict[str, SourceModel] = {}
        self.records: dict[str, dict[str, Any]] = {}

    def get(
        self,
        kind: str,
        key: str,
        build: Callable[[], nn.Module],
        x: Callable[[], tuple[np.ndarray, np.ndarray]],
        class_names: tuple[str, ...],
        samples: int,
        sgd: dict[str, Any],
        describe: dict[str, Any],
    ) -> SourceModel:
        """The source model of ``key``: from memory, else the run dir, else trained.

        ``build()`` makes the untrained model (seeded by the caller); ``x()`` gives the
        source rows and labels (only called when training); ``describe`` is recorded.
        """
        if key in self.memory:
            found = self.memory[key]
            return SourceModel(**{**found.__dict__, "status": "memory"})
        path = None if self.directory is None else self.directory / f"{kind}-{key}.pt"
        model = build()
        device = sgd.get("device", "cpu")
        if path is not None and path.exists():
            saved = _load(path, key)
            model.load_state_dict(saved["state_dict"])
            model.to(device)
            log = TrainingLog(
                loss=list(saved["log"]["loss"]),
                accuracy=list(saved["log"]["accuracy"]),
                samples_seen=int(saved["log"]["samples_seen"]),
                batch_size=int(saved["log"]["batch_size"]),
            )
            found = SourceModel(
                kind, key, model, class_names, log, float(saved["seconds"]), "saved", path
            )
        else:
            xs, ys = x()
            model.to(device)
            start = time.perf_counter()
            log = train_source(model, xs, ys, samples, **sgd)
            seconds = time.perf_counter() - start
            model.eval()
            if path is not None:
                _save(path, key, kind, model, log, seconds, describe)
            found = SourceModel(kind, key, model, class_names, log, seconds, "trained", path)
        model.eval()
        self.memory[key] = found
        self.records[key] = {
            **describe,
            "kind": kind,
            "file": None if path is None else path.name,
            "status": found.status,
            "train_seconds": round(found.seconds, 3),
        }
        return found


def _save(
    path: Path, key: str, kind: str, model: nn.Module, log: TrainingLog, seconds: float,
    describe: dict[str, Any],
) -> None:  # fmt: skip
    record = {
        "format": FORMAT,
        "key": key,
        "kind": kind,
        "describe": json.loads(json.dumps(describe, default=str)),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "log": {
            "loss": [float(v) for v in log.loss],
            "accuracy": [float(v) for v in log.accuracy],
            "samples_seen": int(log.samples_seen),
            "batch_size": int(log.batch_size),
        },
        "seconds": float(seconds),
    }
    save_atomically(record, path)  # two processes saving one model never share a temp file


def _load(path: Path, key: str) -> dict[str, Any]:

    saved = load_plain(path, "baseline source model")
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("key") != key:
        raise ValueError(f"{path} is not the baseline source model of key {key}")
    return saved


def load_source_state(path: str | Path) -> dict[str, Any]:
    """A saved source model's record: ``state_dict``, ``describe``, ``log``, ``kind``."""
    path = Path(path)
    return _load(path, path.stem.split("-", 1)[1])
