"""Per-generation events for callbacks (loggers, held-out checks, checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from pathnet_fer.evolution.task import Task
    from pathnet_fer.pathnet.supernet import PathNet


@dataclass
class GenerationEvent:
    """What happened in one generation, for all R runs.

    ``generation``: 1-based count of generations done in this task.
    ``pairs (R, 2)``: population indices of the two paths in the tournament.
    ``fitness (R, 2)``, ``loss (R, 2)``: each path's fitness and mean training
    cross-entropy over its minibatches. ``winner (R,)``: 0 or 1 (position in the pair).
    ``winner_genotypes (R, L, N)``, ``paths (R, 2, L, N)``: the genotypes trained.
    ``train_accuracy (R, 2)``: fraction correct over the minibatches (equals ``fitness``
    when ``fitness="train"``). ``seconds``: wall time of this generation.
    Tensors are on the CPU.
    """

    generation: int
    task: Task
    net: PathNet
    pairs: torch.Tensor
    paths: torch.Tensor
    fitness: torch.Tensor
    loss: torch.Tensor
    train_accuracy: torch.Tensor
    winner: torch.Tensor
    winner_genotypes: torch.Tensor
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    stop_requested: bool = False

    def request_stop(self) -> None:
        """Ask ``evolve`` to end the task after this generation (e.g. a time budget)."""
        self.stop_requested = True


class GenerationCallback(Protocol):
    """Anything called with each :class:`GenerationEvent`."""

    def __call__(self, event: GenerationEvent) -> None: ...
