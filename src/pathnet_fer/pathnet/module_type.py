"""What a kind of PathNet module must provide: the super-network sees only this.

A module type owns the shapes of its stacked parameter tensors (``weights[l]`` of shape
``(R, M, *module_weight)``, ``biases[l]`` of shape ``(R, M, *module_bias)``), how they
are initialised, the batched forward pass of a set of paths, the batched SGD step of a
tournament's paths, and the export of one path as a standalone ``nn.Module``. The GA,
the tasks, fix/re-initialise, checkpoints and the protocol only see genotypes
``(L, N)`` and these methods, so every stage works for every module type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import nn

    from pathnet_fer.pathnet.config import PathNetConfig
    from pathnet_fer.pathnet.supernet import PathNet


class ModuleType:
    """Base class: one instance per super-network (holds no parameters itself)."""

    name = "base"

    def __init__(self, config: PathNetConfig) -> None:
        self.config = config

    def weight_shape(self, layer: int) -> tuple[int, ...]:
        """Shape of ONE module's weight in ``layer``."""
        raise NotImplementedError

    def bias_shape(self, layer: int) -> tuple[int, ...]:
        """Shape of ONE module's bias in ``layer``."""
        raise NotImplementedError

    def fan_in(self, layer: int) -> int:
        """Inputs feeding one output unit of a module (for initialisation)."""
        raise NotImplementedError

    def initial_values(
        self, layer: int, runs: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Fresh ``(weights, biases)`` of every module of ``layer`` (``(R, M, ...)``, drawn
        from ``generator`` with a fixed consumption), or None for the super-network's
        generic initialisation (``PathNetConfig.init`` on weights, zero biases)."""
        return None

    def flops_per_sample(self, paths: int = 1) -> int:
        """Forward multiply-adds x 2 of one path on one sample (all N modules active)."""
        raise NotImplementedError

    def forward_paths(
        self,
        net: PathNet,
        x: torch.Tensor,
        paths: torch.Tensor,
        readout_weight: torch.Tensor,
        readout_bias: torch.Tensor,
        run: int,
    ) -> torch.Tensor:
        """Logits ``(P, n, C)`` of P paths ``(P, L, N)`` of run ``run`` on ``x (n, D)``."""
        raise NotImplementedError

    # ``train_paths(net, runs, paths, readout_weight, readout_bias, x_all, y_all,
    # batch_index, lr, shared_update)``: SGD on G paths at once, returning per path
    # (correct, summed loss); see ``PathNet.train_paths``. Subclasses bind the function.
    train_paths: Callable[..., tuple[torch.Tensor, torch.Tensor]]

    def path_model(
        self,
        net: PathNet,
        genotype: torch.Tensor,
        readout_weight: torch.Tensor,
        readout_bias: torch.Tensor,
        run: int,
        task_name: str,
    ) -> nn.Module:
        """The path as a standalone module taking flattened inputs ``(n, D)``."""
        raise NotImplementedError
