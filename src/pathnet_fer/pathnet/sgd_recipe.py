"""What a path's SGD does besides the plain step: momentum, weight decay, soft targets,
and the per-sample image warps of on-the-fly augmentation.

The GA decides the rate of each generation (``EvolutionConfig.lr_at``) and draws the
warps from its own seeded generator (``evolution/augment.py``), so the module type's
trainer stays a pure function of its inputs: one seed, one result.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class SgdRecipe:
    """Settings of one call to ``PathNet.train_paths`` beyond ``lr``.

    ``momentum``: heavy-ball momentum; the buffers start at zero for every call (a path
    trains ``minibatches`` steps per generation on its own working copy).
    ``weight_decay``: L2 on conv weights and the readout's weights (not biases), added
    to the gradient as in ``torch.optim.SGD``.
    ``label_smoothing``: the target is ``(1 - e) * onehot + e / C``.
    ``targets``: ``(n, C)`` rows of ``x_all``'s target distributions (e.g. FER+ votes);
    None = one-hot labels. Accuracy is always counted against the integer labels.
    ``warps``: ``(S, G, B, 2, 3)`` affine matrices (``F.affine_grid``'s convention), one
    per sample seen; None = no augmentation.
    ``precision``: ``fp32`` or ``bf16`` (block paths' layers under bfloat16 autocast in
    the training steps; weights and updates stay float32).
    """

    momentum: float = 0.0
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    targets: torch.Tensor | None = None
    warps: torch.Tensor | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @property
    def plain(self) -> bool:
        """True when the step is the paper's plain SGD on one-hot labels."""
        return (
            self.momentum == 0.0
            and self.weight_decay == 0.0
            and self.label_smoothing == 0.0
            and self.targets is None
            and self.warps is None
            and self.precision == "fp32"
        )

    def target_rows(
        self, y: torch.Tensor, rows: torch.Tensor | None, n_classes: int
    ) -> torch.Tensor:
        """Targets of the samples ``rows`` (labels ``y``): soft or one-hot, smoothed."""
        if self.targets is not None and rows is not None:
            t = self.targets[rows]
        else:
            t = torch.nn.functional.one_hot(y, n_classes).to(torch.float32)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + self.label_smoothing / n_classes
        return t


PLAIN = SgdRecipe()
