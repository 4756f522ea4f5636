"""A plain MLP the size of one PathNet path, trained with SGD (from scratch or fine-tuned).

"The same size as one path": a path uses N = 5 modules of U = 20 ReLU units in each of
L = 3 layers, i.e. N x U = 100 units per layer, and a per-task readout. This MLP has L
hidden layers of N x U = 100 ReLU units each, fully connected, and a readout. A path is
exactly this MLP with its between-layer weights tied by the averaging of module outputs
(each layer's modules see the 20-d mean of the previous layer's 5 modules), so the MLP
can express everything one path can; it has a few more weights (251,306 vs 234,826 for
2304 inputs and 6 classes, 7% more), none of PathNet's structure, and no evolution.
Fine-tuning = train on the source task, swap in a new readout, train everything on the
destination task (the "fine-tuning" baseline of the PathNet paper).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class MLPConfig:
    """Shape and optimiser of the MLP baseline (defaults mirror PathNet's paper settings)."""

    layers: int = 3  # L
    width: int = 100  # N x U: the units one path activates per layer
    lr: float = 0.02  # PathNet's SGD learning rate
    momentum: float = 0.0  # PathNet uses plain SGD
    batch_size: int = 16

    @classmethod
    def like_path(cls, layers: int = 3, units: int = 20, max_active: int = 5, **kw) -> MLPConfig:
        """The MLP matching a PathNet of ``layers`` x ``max_active`` modules of ``units``."""
        return cls(layers=layers, width=units * max_active, **kw)

    def to_dict(self) -> dict:
        return asdict(self)


class MLP(nn.Module):
    """``layers`` ReLU layers of ``width`` units and a replaceable readout."""

    def __init__(self, input_dim: int, n_classes: int, layers: int = 3, width: int = 100):
        super().__init__()
        dims = [input_dim] + [width] * layers
        self.body = nn.Sequential(
            *[m for i in range(layers) for m in (nn.Linear(dims[i], dims[i + 1]), nn.ReLU())]
        )
        self.readout = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.body(x))

    def new_readout(self, n_classes: int) -> None:
        """A fresh readout for a new task (the body keeps what the source task taught it)."""
        self.readout = nn.Linear(self.readout.in_features, n_classes)
