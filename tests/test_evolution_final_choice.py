"""The final path of a task: the best on the selection data, ties to the GA's consensus."""

from __future__ import annotations

import torch

from pathnet_fer.evolution.evaluate import pick_best


def _population(*genotypes: list[list[int]]) -> torch.Tensor:
    return torch.tensor([genotypes])  # (1, P, L, N)


def test_a_tie_goes_to_the_genotype_with_the_most_copies() -> None:
    variant, consensus = [[4, 14], [10, 18]], [[3, 14], [10, 18]]
    # the consensus in another module order is the same path (a multiset per layer)
    pop = _population(variant, consensus, [[14, 3], [18, 10]], consensus, [[1, 2], [3, 4]])
    acc = torch.tensor([[0.676, 0.676, 0.676, 0.676, 0.5]])
    assert pick_best(acc, pop).tolist() == [1]  # plain argmax would say 0: the variant


def test_a_higher_accuracy_beats_any_number_of_copies() -> None:
    pop = _population([[1, 2]], [[3, 4]], [[3, 4]], [[3, 4]])
    acc = torch.tensor([[0.70, 0.69, 0.69, 0.69]])
    assert pick_best(acc, pop).tolist() == [0]


def test_runs_choose_independently_and_a_full_tie_takes_the_first() -> None:
    a, b = [[1, 2]], [[3, 4]]
    pop = torch.tensor([[a, b, b], [b, a, a]])
    acc = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    assert pick_best(acc, pop).tolist() == [1, 1]
    same = torch.tensor([[a, b]])
    assert pick_best(torch.tensor([[0.5, 0.5]]), same).tolist() == [0]


def test_a_task_ends_on_the_consensus_when_the_selection_ties(monkeypatch) -> None:
    """The end of a task (``Task._reevaluate``) chooses by ``pick_best``, not by argmax."""
    from pathnet_fer.evolution import task as task_module
    from pathnet_fer.evolution.task import Task

    variant, consensus = [[4, 14], [10, 18]], [[3, 14], [10, 18]]
    task = Task.__new__(Task)
    task.population = _population(variant, consensus, consensus)
    task._net, task._data = object(), object()  # only checked for presence here
    tied = torch.tensor([[0.676, 0.676, 0.676]])
    monkeypatch.setattr(task_module, "evaluate_population", lambda net, t, data: tied)
    paths, fitness = task._reevaluate()
    assert paths.tolist() == [consensus]
    assert fitness.tolist() == [tied[0, 1].item()]


def test_the_selection_sample_changes_the_final_choice_and_nothing_else() -> None:
    """``selection_samples`` only sizes the final choice: the same seed evolves the same
    populations and readouts whatever its value (a final pick on more faces can be adopted
    without changing the evolution), and ``None`` chooses on every training row."""
    from sklearn.datasets import load_digits

    from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve
    from pathnet_fer.evolution.evaluate import path_accuracy
    from pathnet_fer.pathnet import PathNet, PathNetConfig

    d = load_digits()
    x, y = (d.data[:400] / 16.0).astype("float32"), d.target[:400]
    tasks, nets = {}, {}
    for k in (16, None):
        nets[k] = PathNet(PathNetConfig(input_dim=64), runs=2, seed=0, device="cpu")
        cfg = EvolutionConfig(generations=8, selection_samples=k)
        tasks[k] = evolve(nets[k], TaskData(x, y), n_classes=10, config=cfg, seed=3)
    small, full = tasks[16], tasks[None]
    assert torch.equal(small.population, full.population)
    assert torch.equal(small.readout_weight, full.readout_weight)
    assert torch.equal(small.history_tensors()["fitness"], full.history_tensors()["fitness"])
    for run in range(2):
        assert small.selection_rows[run].numel() == 16
        assert torch.equal(full.selection_rows[run], torch.arange(len(y)))
        assert set(small.selection_rows[run].tolist()) < set(range(len(y)))
    # the path kept on every row is pick_best of the accuracies on every row
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    acc = torch.stack(
        [path_accuracy(nets[None], full, r, full.population[r], xs, ys) for r in range(2)]
    )
    best = pick_best(acc, full.population)
    for run in range(2):
        assert torch.equal(full.best_paths[run], full.population[run, best[run]])
        assert full.best_fitness[run] == acc[run, best[run]]
