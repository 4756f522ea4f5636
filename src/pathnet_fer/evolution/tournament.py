"""The binary tournament (microbial GA): pick two, the loser becomes a mutated winner."""

from __future__ import annotations

import torch

from pathnet_fer.pathnet.genotype import mutate


def pick_pairs(runs: int, population: int, generator: torch.Generator) -> torch.Tensor:
    """Two DISTINCT members per run, uniformly at random: ``(R, 2)`` population indices."""
    return torch.rand(runs, population, generator=generator).argsort(dim=1)[:, :2].contiguous()


def pick_winners(fitness: torch.Tensor) -> torch.Tensor:
    """``(R,)`` 0 or 1: the fitter of each pair; a tie goes to the first drawn (the pair
    order is random, so ties are broken at random)."""
    return (fitness[:, 1] > fitness[:, 0]).long()


def replace_losers(
    population: torch.Tensor,
    member_fitness: torch.Tensor,
    pairs: torch.Tensor,
    winner: torch.Tensor,
    fitness: torch.Tensor,
    modules: int,
    generator: torch.Generator,
    rate: float,
    max_shift: int,
    include_zero: bool,
    boundary: str,
) -> torch.Tensor:
    """In place: the loser slot gets a mutated copy of the winner (its fitness becomes
    unknown, NaN); the winner keeps its genotype and records this fitness.
    Returns the winners' genotypes ``(R, L, N)``."""
    rows = torch.arange(pairs.shape[0])
    win_idx = pairs[rows, winner]
    lose_idx = pairs[rows, 1 - winner]
    winners = population[rows, win_idx].clone()
    population[rows, lose_idx] = mutate(
        winners, modules, generator, rate, max_shift, include_zero, boundary
    )
    member_fitness[rows, win_idx] = fitness[rows, winner].to(member_fitness.dtype)
    member_fitness[rows, lose_idx] = float("nan")
    return winners
