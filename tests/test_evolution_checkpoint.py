"""Checkpoint/resume gives exactly the uninterrupted run; mismatches are refused; seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathnet_fer.evolution import (
    CheckpointEvery,
    EvolutionConfig,
    TaskData,
    evolve,
    load_checkpoint,
    save_checkpoint,
)
from pathnet_fer.pathnet import PathNet, PathNetConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype("float32")
    # two runs on different data (same input size and classes), held-out split for fitness
    return [
        TaskData(x[:500], d.target[:500], x[500:700], d.target[500:700], name="a"),
        TaskData(x[700:1300], d.target[700:1300], x[1300:1500], d.target[1300:1500], name="b"),
    ]


CFG = PathNetConfig(input_dim=64, modules=10, max_active=3)


def _same_state(net_a, task_a, net_b, task_b) -> None:
    for wa, wb in zip(net_a.weights + net_a.biases, net_b.weights + net_b.biases, strict=True):
        assert torch.equal(wa, wb)
    assert torch.equal(net_a.fixed, net_b.fixed)
    assert torch.equal(task_a.population, task_b.population)
    assert torch.equal(task_a.readout_weight, task_b.readout_weight)
    assert torch.equal(task_a.best_paths, task_b.best_paths)
    for key in ("fitness", "loss", "pairs", "winner", "winner_genotypes"):
        assert torch.equal(task_a.history_tensors()[key], task_b.history_tensors()[key]), key


@pytest.mark.parametrize("fitness", ["train", "heldout"])
def test_resume_from_checkpoint_equals_uninterrupted_run(data, tmp_path, fitness) -> None:
    cfg = EvolutionConfig(generations=12, fitness=fitness, minibatches=10)

    # source task, fixed, then a destination task interrupted at generation 5
    def source() -> PathNet:
        net = PathNet(CFG, runs=2, seed=7, device="cpu")
        net.fix(
            evolve(
                net,
                data,
                n_classes=10,
                config=EvolutionConfig(generations=4, minibatches=10),
                seed=1,
            )
        )
        return net

    net_full = source()
    full = evolve(net_full, data, n_classes=10, config=cfg, seed=3, name="dst")

    class Kill(Exception):
        pass

    def kill_at_5(event) -> None:
        if event.generation == 5:
            raise Kill

    net_cut = source()
    with pytest.raises(Kill):
        evolve(
            net_cut,
            data,
            n_classes=10,
            config=cfg,
            seed=3,
            name="dst",
            callbacks=[CheckpointEvery(tmp_path / "ck.pt", every=1), kill_at_5],
        )
    net_res, task_res, extra = load_checkpoint(
        tmp_path / "ck.pt", device="cpu", expect_net_config=CFG, expect_evolution_config=cfg
    )
    assert task_res.generation == 5 and extra == {}
    resumed = evolve(net_res, data, task=task_res, config=cfg)
    _same_state(net_full, full, net_res, resumed)


def test_same_seed_same_result_different_seed_differs(data) -> None:
    cfg = EvolutionConfig(generations=5, minibatches=10)
    results = []
    for seed in (0, 0, 1):
        net = PathNet(CFG, runs=2, seed=seed, device="cpu")
        results.append((net, evolve(net, data, n_classes=10, config=cfg, seed=seed)))
    _same_state(*results[0], *results[1])
    assert not torch.equal(
        results[0][1].history_tensors()["fitness"], results[2][1].history_tensors()["fitness"]
    )


def test_mismatched_checkpoint_is_refused_naming_the_fields(data, tmp_path) -> None:
    cfg = EvolutionConfig(generations=3, minibatches=10)
    net = PathNet(CFG, runs=2, seed=0, device="cpu")
    task = evolve(net, data, n_classes=10, config=cfg, seed=0)
    path = save_checkpoint(tmp_path / "ck.pt", net, task, extra={"experiment": "x"})
    other_net = PathNetConfig(input_dim=64, modules=12, max_active=3, combine="sum")
    with pytest.raises(
        ValueError,
        match=r"PathNetConfig\.combine: 'mean' != 'sum'.*PathNetConfig\.modules: 10 != 12",
    ):
        load_checkpoint(path, device="cpu", expect_net_config=other_net)
    with pytest.raises(ValueError, match=r"EvolutionConfig\.lr: 0\.02 != 0\.05"):
        load_checkpoint(
            path, device="cpu", expect_evolution_config=EvolutionConfig(lr=0.05, minibatches=10)
        )
    with pytest.raises(ValueError, match="runs: 2 != 3"):
        load_checkpoint(path, device="cpu", expect_runs=3)
    # longer generations is allowed (extend a task); other changes are refused at evolve()
    net2, task2, extra = load_checkpoint(
        path, device="cpu", expect_evolution_config=EvolutionConfig(generations=50, minibatches=10)
    )
    assert extra == {"experiment": "x"}
    with pytest.raises(ValueError, match=r"batch_size: 16 != 8"):
        evolve(
            net2,
            data,
            task=task2,
            config=EvolutionConfig(generations=5, minibatches=10, batch_size=8),
        )
    swapped = [data[1], data[0]]
    with pytest.raises(ValueError, match="data differs"):
        evolve(net2, swapped, task=task2, config=EvolutionConfig(generations=5, minibatches=10))
    # a truncated (killed while writing elsewhere) or foreign file gets a clear message
    (tmp_path / "bad.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a pathnet-fer checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_bad_task_data_gets_clear_errors() -> None:
    net = PathNet(CFG, runs=2, seed=0, device="cpu")
    x = np.random.default_rng(0).random((40, 64), dtype=np.float32)
    y = np.arange(40) % 4
    with pytest.raises(ValueError, match=r"run 0: y must be class indices in \[0, 3\)"):
        evolve(net, TaskData(x, y), n_classes=3)
    with pytest.raises(ValueError, match=r"shape \(n, 64\)"):
        evolve(net, TaskData(x[:, :10], y), n_classes=4)
    with pytest.raises(ValueError, match="TaskData for 3 runs"):
        evolve(net, [TaskData(x, y)] * 3, n_classes=4)
    with pytest.raises(ValueError, match="heldout' needs x_val"):
        evolve(net, TaskData(x, y), n_classes=4, config=EvolutionConfig(fitness="heldout"))
    bad = x.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evolve(net, TaskData(bad, y), n_classes=4)
    with pytest.raises(ValueError, match="empty"):
        evolve(net, TaskData(x[:0], y[:0]), n_classes=4)
    with pytest.raises(ValueError, match="no best_paths"):
        net.fix(object())


def test_time_budget_and_progress_bar_callbacks(data) -> None:
    from pathnet_fer.evolution import ProgressBar, TimeBudget

    net = PathNet(CFG, runs=2, seed=0, device="cpu")
    bar = ProgressBar(disable=True)
    task = evolve(
        net,
        data,
        n_classes=10,
        config=EvolutionConfig(generations=500, minibatches=5),
        seed=0,
        callbacks=[bar, TimeBudget(0.3)],
    )
    assert 1 <= task.generation < 500, "the budget stopped the task early"
    assert task.finished and task.best_paths.shape == (2, 3, 3)
