"""Fresh evaluation passes (no training): population re-evaluation and held-out fitness."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from pathnet_fer.evolution.data import PreparedData

if TYPE_CHECKING:
    from pathnet_fer.evolution.task import Task
    from pathnet_fer.pathnet.supernet import PathNet


@torch.no_grad()
def path_accuracy(
    net: PathNet, task: Task, run: int, paths: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Accuracy ``(P,)`` of P paths of one run on ``(x, y)`` with the task's readout."""
    logits = net.forward_paths(x, paths, task.readout_weight[run], task.readout_bias[run], run)
    return (logits.argmax(-1) == y.unsqueeze(0)).float().mean(1).cpu()


def selection_data(task: Task, data: PreparedData, run: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Data on which the best path is chosen: the validation split with held-out fitness,
    else the run's fixed training subset (``selection_samples`` rows)."""
    if task.config.fitness == "heldout":
        return data.x_val[run], data.y_val[run]
    x, y = data.run_rows(run)
    rows = task.selection_rows[run].to(x.device)
    return x[rows], y[rows]


def pick_best(accuracy: torch.Tensor, population: torch.Tensor) -> torch.Tensor:
    """Index ``(R,)`` of each run's best member: the highest ``accuracy (R, P)``; among
    members tied on it, the genotype of which ``population (R, P, L, N)`` holds the most
    copies (the GA's consensus; a path is a multiset of modules per layer), then the
    first. Why: on a few hundred selection rows a one-module variant of the consensus
    often ties with it exactly, and the first index is an arbitrary pick between them
    (docs/results-fer2013.md, "Choosing the final path")."""
    r, p = accuracy.shape
    genes = population.sort(dim=-1).values.reshape(r, p, -1).to(accuracy.device)
    copies = (genes.unsqueeze(2) == genes.unsqueeze(1)).all(-1).sum(-1)  # (R, P)
    top = accuracy == accuracy.max(dim=1, keepdim=True).values
    return torch.where(top, copies, torch.full_like(copies, -1)).argmax(dim=1)


def evaluate_population(net: PathNet, task: Task, data: PreparedData) -> torch.Tensor:
    """Accuracy of every member of every run's population ``(R, P)`` on the selection data."""
    out = []
    for run in range(task.runs):
        x, y = selection_data(task, data, run)
        out.append(path_accuracy(net, task, run, task.population[run], x, y))
    return torch.stack(out)
