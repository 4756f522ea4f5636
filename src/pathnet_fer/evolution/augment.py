"""On-the-fly augmentation: one random affine warp per sample a path trains on.

Drawn on the task's CPU generator (device-independent, checkpointed, so a seed and a
resume give the same draws) and applied by the module type's trainer to the crop before
its input norm (``pathnet.conv_ops.warped_images``).
"""

from __future__ import annotations

import math

import torch

from pathnet_fer.evolution.config import EvolutionConfig


def draw_warps(
    config: EvolutionConfig, shape: tuple[int, ...], generator: torch.Generator
) -> torch.Tensor:
    """``shape + (2, 3)`` affine matrices in ``F.affine_grid``'s convention (output
    coordinates in [-1, 1] -> input coordinates): a mirror with probability 1/2, a
    rotation uniform in +-``augment_rotate`` degrees, a zoom uniform in
    1 +- ``augment_scale`` and a shift uniform in +-``augment_shift`` of the side.
    Only the enabled components consume random numbers, in this fixed order."""

    def uniform(half_width: float) -> torch.Tensor:
        return (torch.rand(shape, generator=generator) * 2 - 1) * half_width

    ones = torch.ones(shape)
    mirror = ones
    if config.augment_flip:
        mirror = torch.where(torch.rand(shape, generator=generator) < 0.5, -ones, ones)
    angle = uniform(math.radians(config.augment_rotate)) if config.augment_rotate else None
    zoom = 1.0 + uniform(config.augment_scale) if config.augment_scale else ones
    if config.augment_shift:
        tx, ty = uniform(2 * config.augment_shift), uniform(2 * config.augment_shift)
    else:
        tx = ty = torch.zeros(shape)
    cos = torch.cos(angle) if angle is not None else ones
    sin = torch.sin(angle) if angle is not None else torch.zeros(shape)
    # input = R(angle) @ diag(mirror, 1) @ out / zoom + t  (a larger zoom shows a larger face)
    row0 = torch.stack([cos * mirror / zoom, -sin / zoom, tx], -1)
    row1 = torch.stack([sin * mirror / zoom, cos / zoom, ty], -1)
    return torch.stack([row0, row1], -2)
