"""Loggers fed by evolution events (Avalanche-style): metrics CSV, console, TensorBoard.

The protocol turns each :class:`~pathnet_fer.evolution.GenerationEvent` (all R batched
runs at once) into per-run records and hands them to every logger; adding a logger never
touches the protocol or the evolution loop.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pathnet_fer.experiments.metrics_log import MetricsWriter


@dataclass(frozen=True)
class RunKey:
    """Which run a batched row belongs to."""

    experiment: str
    iteration: int
    fold: int
    task: str
    arm: str

    def label(self) -> str:
        return f"{self.experiment}/{self.arm}/it{self.iteration}/fold{self.fold}"


class Logger(Protocol):
    """Receives per-run values; ``split``/``level`` as in the metrics contract."""

    def log_values(
        self, key: RunKey, generation: int, split: str, level: str, values: dict[str, float]
    ) -> None: ...

    def close(self) -> None: ...


class CSVLogger:
    """Writes the long-format ``metrics.csv`` rows (the contract in docs/architecture.md)."""

    def __init__(self, path: str | Path):
        self.writer = MetricsWriter(path)

    def log_values(
        self, key: RunKey, generation: int, split: str, level: str, values: dict[str, float]
    ) -> None:
        for metric, value in values.items():
            self.writer.log(
                experiment=key.experiment,
                iteration=key.iteration,
                fold=key.fold,
                task=key.task,
                arm=key.arm,
                generation=generation,
                split=split,
                level=level,
                metric=metric,
                value=float(value),
            )

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class ConsoleLogger:
    """One line per run every ``every`` generations, and every held-out check."""

    def __init__(self, every: int = 0, stream=None):
        self.every = every
        self.stream = stream or sys.stderr

    def log_values(
        self, key: RunKey, generation: int, split: str, level: str, values: dict[str, float]
    ) -> None:
        if split == "train" and (self.every <= 0 or generation % self.every):
            return
        if split == "test" and level != "frame":
            return
        text = " ".join(f"{k}={v:.3f}" for k, v in values.items())
        print(f"[{key.label()} gen {generation}] {split}: {text}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """Scalars per run under ``<dir>/<experiment>/<arm>/it<i>_fold<k>`` (optional dependency)."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # tensorboard is an optional extra
            raise RuntimeError(
                "logging.tensorboard is on but the tensorboard package is not installed: "
                "pip install 'pathnet-fer[tensorboard]' or set logging.tensorboard=false"
            ) from err
        self._writer_cls = SummaryWriter
        self.log_dir = Path(log_dir)
        self._writers: dict[RunKey, object] = {}

    def log_values(
        self, key: RunKey, generation: int, split: str, level: str, values: dict[str, float]
    ) -> None:
        writer = self._writers.get(key)
        if writer is None:
            sub = (
                self.log_dir
                / key.experiment.replace("->", "-to-")
                / key.arm
                / (f"it{key.iteration}_fold{key.fold}")
            )
            writer = self._writers[key] = self._writer_cls(str(sub))
        for metric, value in values.items():
            writer.add_scalar(f"{split}/{level}/{metric}", float(value), generation)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


class LoggerGroup:
    """Fan out to several loggers."""

    def __init__(self, loggers: list):
        self.loggers = loggers

    def log_values(
        self, key: RunKey, generation: int, split: str, level: str, values: dict[str, float]
    ) -> None:
        for logger in self.loggers:
            logger.log_values(key, generation, split, level, values)

    def flush(self) -> None:
        for logger in self.loggers:
            if hasattr(logger, "flush"):
                logger.flush()

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
