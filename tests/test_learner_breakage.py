"""Tests that fail for a broken learner, on real CK+48 face crops.

Each targets a breakage that once passed the whole suite: a GA that never mutates, no
selection (the first path of a pair always wins, or a random one), ``fix()`` doing
nothing, the protocol never calling ``fix``, and drifting paper defaults.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve, load_checkpoint
from pathnet_fer.pathnet import PathNet, PathNetConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def faces(require_data, tmp_path_factory):
    """CK+48 crops at 24x24 (576 inputs): two disjoint subject halves."""
    from pathnet_fer.faces.preprocess import preprocess_dataset
    from pathnet_fer.faces.settings import FaceSettings

    root = require_data("ckplus48")
    data = preprocess_dataset(
        "ckplus48",
        root,
        FaceSettings(size=24, colour="grey"),
        cache_dir=tmp_path_factory.getbasetemp() / "cache",
        workers=1,
        progress=False,
    )
    x, y = data.features().astype(np.float32), np.asarray(data.labels)
    subjects = np.asarray(data.subjects)
    first = np.isin(subjects, np.unique(subjects)[::2])
    return (x[first], y[first]), (x[~first], y[~first]), len(data.class_names)


def _record(events: list):
    """Callback keeping what each generation saw and the population it left."""

    def on_generation(event) -> None:
        events.append(
            (
                event.pairs.clone(),
                event.paths.clone(),  # the pair's genotypes before replacement
                event.fitness.clone(),
                event.winner.clone(),
                event.task.population.clone(),  # after replacement
            )
        )

    return on_generation


@pytest.fixture(scope="module")
def tournaments(faces):
    (x, y), _, n_classes = faces
    cfg = PathNetConfig(input_dim=x.shape[1])
    net = PathNet(cfg, runs=4, seed=0, device="cpu")
    events: list = []
    config = EvolutionConfig(generations=100, minibatches=2, batch_size=16)
    evolve(net, TaskData(x, y), n_classes, config=config, seed=0, callbacks=[_record(events)])
    return cfg, config, events


def test_loser_becomes_a_copy_of_the_fitter_path_which_survives(tournaments) -> None:
    cfg, _, events = tournaments
    decided = 0
    for pairs, paths, fitness, winner, after in events:
        for r in range(pairs.shape[0]):
            if fitness[r, 0] == fitness[r, 1]:
                continue  # a tie: either may win
            decided += 1
            fitter = int(fitness[r, 1] > fitness[r, 0])
            assert int(winner[r]) == fitter, "the fitter path of the pair must win"
            survivor, loser = int(pairs[r, fitter]), int(pairs[r, 1 - fitter])
            assert torch.equal(after[r, survivor], paths[r, fitter]), "winner must survive"
            step = (after[r, loser] - paths[r, fitter]).remainder(cfg.modules)
            assert bool(((step == 0) | (step <= 2) | (step >= cfg.modules - 2)).all()), (
                "the loser must become the winner shifted by at most 2 per element"
            )
    assert decided >= len(events) * 4 // 2, "too few decided tournaments to judge selection"


def test_losers_are_mutated_at_the_configured_rate(tournaments) -> None:
    """Per element: probability 1/(N*L) of a shift from {-2..2}, so 4/5 of that changes."""
    cfg, config, events = tournaments
    changed = total = 0
    for pairs, paths, _, winner, after in events:
        rows = torch.arange(pairs.shape[0])
        copies = after[rows, pairs[rows, 1 - winner]]
        changed += int((copies != paths[rows, winner]).sum())
        total += copies.numel()
    expected = config.effective_mutation_rate(cfg.layers, cfg.max_active) * 4 / 5
    rate = changed / total
    sd = (expected * (1 - expected) / total) ** 0.5
    assert abs(rate - expected) < 4.5 * sd, f"mutation rate {rate:.4f}, expected {expected:.4f}"
    # and the population really evolves: generation 100 differs from generation 1
    assert not torch.equal(events[0][4], events[-1][4])


def test_fixed_source_path_is_unchanged_by_the_destination_task(faces) -> None:
    (xs, ys), (xd, yd), n_classes = faces
    cfg = PathNetConfig(input_dim=xs.shape[1])
    net = PathNet(cfg, runs=2, seed=1, device="cpu")
    quick = EvolutionConfig(generations=8, minibatches=5)
    source = evolve(net, TaskData(xs, ys), n_classes, config=quick, seed=1, name="source")
    net.fix(source)
    probe = torch.from_numpy(xs[:64])
    before = [net.predict_proba(probe, source, run=r) for r in range(net.runs)]
    # every module of each run's best source path is fixed, nothing else
    for r in range(net.runs):
        for layer in range(cfg.layers):
            used = set(source.best_paths[r, layer].tolist())
            fixed = set(torch.nonzero(net.fixed[r, layer]).flatten().tolist())
            assert fixed == used, (r, layer)
    evolve(net, TaskData(xd, yd), n_classes, config=quick, seed=2, name="destination")
    for r in range(net.runs):
        assert torch.equal(net.predict_proba(probe, source, run=r), before[r]), (
            "training the destination changed the fixed source path"
        )


def test_repeat_protocol_fixes_the_source_path_before_the_destination(
    tmp_path, require_data
) -> None:
    from pathnet_fer.experiments.config_loading import load_config
    from pathnet_fer.experiments.execute import execute_job
    from pathnet_fer.experiments.job_plan import plan_jobs

    require_data("ckplus48")
    config = load_config(
        "small",
        [
            "sets=[{source: ckplus48, destination: ckplus48}]",
            "faces.size=24",
            "evolution.generations=2",
            "evolution.minibatches=2",
            "protocol.eval_every=2",
            "protocol.folds=2",
            "protocol.iterations=1",
            "protocol.iteration_mode=repeat",
            "logging.progress=false",
            "save_models=none",
        ],
    )
    for source in (j for j in plan_jobs(config) if j.arm == "source"):
        assert execute_job(source, config, tmp_path)["phases"][0]["phase"] == "source"
    job = next(j for j in plan_jobs(config) if j.arm == "transfer")
    record = execute_job(job, config, tmp_path)
    assert [p["phase"] for p in record["phases"]] == ["transfer"]
    net, _, _ = load_checkpoint(tmp_path / "checkpoints" / job.job_id / "state.pt", "cpu")
    assert net.fixed_tasks == ["source"], "the source task's path must be fixed"
    per_layer = net.fixed.sum(-1)  # (runs, layers): distinct modules of the best path
    assert bool(((per_layer >= 1) & (per_layer <= net.config.max_active)).all())


def test_paper_defaults_are_pinned() -> None:
    """docs/method.md (the paper): change these only with the method note."""
    e = EvolutionConfig()
    assert (e.population, e.generations, e.minibatches, e.batch_size) == (20, 1000, 50, 16)
    assert e.lr == 0.02 and e.fitness == "train"
    assert e.mutation_rate is None and e.effective_mutation_rate(3, 5) == 1 / 15
    assert (e.mutation_shift, e.mutation_include_zero) == (2, True)
    p = PathNetConfig(input_dim=10)
    assert (p.layers, p.modules, p.units, p.max_active, p.combine) == (3, 20, 20, 5, "mean")


def test_tournaments_pick_distinct_members_whose_genotypes_may_be_equal(tournaments) -> None:
    """Documented in docs/pathnet.md: two distinct MEMBERS, not distinct genotypes (a loser
    is often an unmutated copy of its winner, so identical pairs grow as the GA converges)."""
    _, _, events = tournaments
    identical = []
    for pairs, paths, *_ in events:
        assert bool((pairs[:, 0] != pairs[:, 1]).all())
        identical.append((paths[:, 0] == paths[:, 1]).flatten(1).all(1).double().mean())
    late = float(torch.stack(identical[50:]).mean())
    print(f"identical-genotype tournaments after generation 50: {late:.2f}")
    assert 0.0 < late < 0.9
