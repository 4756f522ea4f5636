"""Genotypes: an L x N matrix of module indices per path, and their mutation.

A genotype may name the same module twice in a layer (mutation can collide two
slots). Such a duplicate counts ONCE: the layer's active set is the set of distinct
indices, so a path has at most N distinct modules per layer and ``mean`` divides by
the number of distinct modules. Only the first occurrence of an index carries weight;
later duplicates get weight 0 (and so receive zero gradient).
"""

from __future__ import annotations

import torch

BOUNDARIES = ("wrap", "clamp")


def random_genotypes(
    shape: tuple[int, ...], layers: int, max_active: int, modules: int, generator: torch.Generator
) -> torch.Tensor:
    """Random genotypes ``(*shape, L, N)``: N DISTINCT modules per layer, uniformly chosen.

    Drawn on the CPU generator so the same seed gives the same genotypes on any device.
    """
    keys = torch.rand((*shape, layers, modules), generator=generator)
    return keys.argsort(dim=-1)[..., :max_active].contiguous()


def slot_weights(paths: torch.Tensor, combine: str) -> torch.Tensor:
    """Per-slot combine weight ``(..., L, N)`` float: 1/k (mean) or 1 (sum) on the first
    occurrence of each distinct module, 0 on duplicates; k = distinct modules in the layer."""
    same = paths.unsqueeze(-1) == paths.unsqueeze(-2)  # (..., N, N): slot i equals slot j
    n = paths.shape[-1]
    earlier = torch.ones(n, n, dtype=torch.bool, device=paths.device).tril(-1)  # j < i
    duplicate = (same & earlier).any(-1)  # slot i repeats an earlier slot
    first = (~duplicate).to(torch.float32)
    if combine == "sum":
        return first
    return first / first.sum(-1, keepdim=True)


def distinct_counts(paths: torch.Tensor) -> torch.Tensor:
    """Number of distinct modules per layer ``(..., L)``."""
    return (slot_weights(paths, "sum") > 0).sum(-1)


def mutate(
    paths: torch.Tensor,
    modules: int,
    generator: torch.Generator,
    rate: float,
    max_shift: int = 2,
    include_zero: bool = True,
    boundary: str = "wrap",
) -> torch.Tensor:
    """Mutated copy: each element, with probability ``rate``, is shifted by an integer drawn
    uniformly from {-max_shift..max_shift} (0 included by default, as the paper's [-2, 2];
    so the effective change rate is ``rate * 4/5``), then wrapped or clamped into [0, M).

    Random numbers are always drawn for every element (fixed consumption), so the stream
    of a generator does not depend on the outcome: resuming stays exact.
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"mutation boundary must be one of {BOUNDARIES}, got {boundary!r}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"mutation rate must be in [0, 1], got {rate}")
    cpu = paths.detach().to("cpu")
    fire = torch.rand(cpu.shape, generator=generator) < rate
    if include_zero:
        shift = torch.randint(-max_shift, max_shift + 1, cpu.shape, generator=generator)
    else:  # draw from {-s..-1, 1..s}
        raw = torch.randint(0, 2 * max_shift, cpu.shape, generator=generator)
        shift = raw - max_shift + (raw >= max_shift).long()
    moved = cpu + torch.where(fire, shift, torch.zeros_like(shift))
    moved = moved.remainder(modules) if boundary == "wrap" else moved.clamp(0, modules - 1)
    return moved.to(paths.device)


def validate_genotypes(paths: torch.Tensor, layers: int, max_active: int, modules: int) -> None:
    """Raise a clear error unless ``paths`` is an integer ``(..., L, N)`` tensor of valid indices."""
    if not isinstance(paths, torch.Tensor) or paths.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"genotypes must be an integer tensor, got {type(paths).__name__}")
    if paths.dim() < 2 or tuple(paths.shape[-2:]) != (layers, max_active):
        raise ValueError(
            f"genotypes must end in (L, N) = ({layers}, {max_active}), got shape {tuple(paths.shape)}"
        )
    if paths.numel() and (int(paths.min()) < 0 or int(paths.max()) >= modules):
        raise ValueError(
            f"genotype module indices must be in [0, {modules}), got "
            f"[{int(paths.min())}, {int(paths.max())}]"
        )
