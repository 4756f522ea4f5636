"""Genotype invariants and the mutation operator's statistics (fixed seeds)."""

from __future__ import annotations

import pytest
import torch

from pathnet_fer.pathnet.genotype import (
    distinct_counts,
    mutate,
    random_genotypes,
    slot_weights,
    validate_genotypes,
)

L, N, M = 3, 5, 20


def test_random_genotypes_shape_range_and_distinct() -> None:
    g = random_genotypes((7, 20), L, N, M, torch.Generator().manual_seed(0))
    assert g.shape == (7, 20, L, N) and g.dtype == torch.int64
    assert int(g.min()) >= 0 and int(g.max()) < M
    assert bool((distinct_counts(g) == N).all()), (
        "a fresh genotype has N distinct modules per layer"
    )
    # every module index is used (uniform choice), seeds differ
    assert set(g.unique().tolist()) == set(range(M))
    assert not torch.equal(g, random_genotypes((7, 20), L, N, M, torch.Generator().manual_seed(1)))
    validate_genotypes(g, L, N, M)


def test_duplicates_count_once_in_mean_and_sum() -> None:
    g = torch.tensor([[[1, 1, 2, 3, 3], [0, 1, 2, 3, 4], [7, 7, 7, 7, 7]]])
    w = slot_weights(g, "mean")
    assert torch.allclose(w[0, 0], torch.tensor([1 / 3, 0, 1 / 3, 1 / 3, 0]))
    assert torch.allclose(w[0, 1], torch.full((5,), 0.2))
    assert torch.allclose(w[0, 2], torch.tensor([1.0, 0, 0, 0, 0]))
    assert torch.equal(slot_weights(g, "sum")[0, 0], torch.tensor([1.0, 0, 1, 1, 0]))
    assert distinct_counts(g).tolist() == [[3, 5, 1]]


@pytest.mark.parametrize("include_zero", [True, False])
def test_mutation_rate_and_shift_distribution(include_zero: bool) -> None:
    gen = torch.Generator().manual_seed(123)
    # Middle of the range and wrap: every shift shows as a difference, no boundary effects.
    base = torch.full((40000, L, N), 10)
    rate = 1.0 / (N * L)
    out = mutate(base, M, gen, rate=rate, max_shift=2, include_zero=include_zero, boundary="wrap")
    diff = out - base
    elements = base.numel()
    changed = (diff != 0).float().mean().item()
    expected_change = rate * (4 / 5 if include_zero else 1.0)
    # binomial standard error at 600k elements is ~0.0003: allow 5 sigma
    assert abs(changed - expected_change) < 5 * (expected_change / elements) ** 0.5 + 1e-3
    shifts = diff[diff != 0]
    assert set(shifts.unique().tolist()) == {-2, -1, 1, 2}, (
        "shifts come from {-2..2}, both directions"
    )
    freq = torch.stack([(shifts == s).float().mean() for s in (-2, -1, 1, 2)])
    assert torch.allclose(freq, torch.full((4,), 0.25), atol=0.02), f"shifts not uniform: {freq}"


def test_mutation_boundaries() -> None:
    gen = torch.Generator().manual_seed(0)
    low = torch.zeros(5000, L, N, dtype=torch.int64)
    clamped = mutate(low, M, gen, rate=1.0, boundary="clamp", include_zero=False)
    assert int(clamped.min()) == 0 and int(clamped.max()) <= 2
    wrapped = mutate(low, M, gen, rate=1.0, boundary="wrap", include_zero=False)
    assert set(wrapped.unique().tolist()) == {1, 2, M - 2, M - 1}
    with pytest.raises(ValueError, match="boundary"):
        mutate(low, M, gen, rate=0.1, boundary="bounce")


def test_mutation_is_seeded_and_never_touches_input() -> None:
    g = random_genotypes((20,), L, N, M, torch.Generator().manual_seed(0))
    before = g.clone()
    a = mutate(g, M, torch.Generator().manual_seed(5), rate=0.5)
    b = mutate(g, M, torch.Generator().manual_seed(5), rate=0.5)
    assert torch.equal(a, b) and torch.equal(g, before) and not torch.equal(a, g)


def test_validate_rejects_bad_genotypes() -> None:
    with pytest.raises(ValueError, match=r"\(L, N\)"):
        validate_genotypes(torch.zeros(2, 4, dtype=torch.int64), L, N, M)
    with pytest.raises(ValueError, match="in \\[0, 20\\)"):
        validate_genotypes(torch.full((L, N), 20), L, N, M)
    with pytest.raises(TypeError):
        validate_genotypes(torch.zeros(L, N), L, N, M)
