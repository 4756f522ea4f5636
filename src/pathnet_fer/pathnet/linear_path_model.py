"""A single path as a standalone ``nn.Module``: only its modules and the task readout.

Used for model files: ``model.config_dict()`` + ``model.state_dict()`` rebuild it with
``PathModel.from_config(config, state_dict)``, without the super-network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pathnet_fer.pathnet.config import COMBINE_MODES

if TYPE_CHECKING:
    from pathnet_fer.pathnet.supernet import PathNet

FORMAT = "pathnet-fer-path-model"


def distinct_modules(genotype: torch.Tensor) -> list[list[int]]:
    """Per layer, the sorted DISTINCT module indices of a genotype ``(L, N)``."""
    return [sorted(set(row)) for row in genotype.tolist()]


@torch.no_grad()
def copy_path_parameters(
    model: nn.Module,
    net: PathNet,
    distinct: list[list[int]],
    readout_weight: torch.Tensor,
    readout_bias: torch.Tensor,
    run: int,
) -> None:
    """Fill a standalone path model (``weights``/``biases`` ParameterLists, ``readout``)
    from run ``run`` of the super-network: layer ``l``'s k modules, stacked along the
    output dimension, in the order of ``distinct[l]``. Works for every module type."""
    for layer, idx in enumerate(distinct):
        w = net.weights[layer][run][idx]  # (k, *module_weight)
        model.weights[layer].copy_(w.reshape(-1, *w.shape[2:]).cpu())
        model.biases[layer].copy_(net.biases[layer][run][idx].reshape(-1).cpu())
    model.readout.weight.copy_(readout_weight.cpu())
    model.readout.bias.copy_(readout_bias.cpu())


class PathModel(nn.Module):
    """Layer ``l`` holds the path's k_l DISTINCT modules as one ``(k_l*U, in_l)`` weight;
    their ReLU outputs are averaged (or summed), then the readout gives logits."""

    def __init__(
        self,
        input_dim: int,
        units: int,
        modules_per_layer: list[int],
        n_classes: int,
        combine: str = "mean",
        genotype: list[list[int]] | None = None,
        task_name: str = "",
    ) -> None:
        super().__init__()
        if combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {COMBINE_MODES}, got {combine!r}")
        if not modules_per_layer or any(k < 1 for k in modules_per_layer):
            raise ValueError(f"modules_per_layer must be positive counts, got {modules_per_layer}")
        self.input_dim, self.units, self.n_classes = input_dim, units, n_classes
        self.modules_per_layer = list(modules_per_layer)
        self.combine = combine
        self.genotype = genotype
        self.task_name = task_name
        dims = [input_dim] + [units] * (len(modules_per_layer) - 1)
        self.weights = nn.ParameterList(
            [
                nn.Parameter(torch.zeros(k * units, d))
                for k, d in zip(modules_per_layer, dims, strict=True)
            ]
        )
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.zeros(k * units)) for k in modules_per_layer]
        )
        self.readout = nn.Linear(units, n_classes)

    @classmethod
    def from_pathnet(
        cls,
        net: PathNet,
        genotype: torch.Tensor,
        readout_weight: torch.Tensor,
        readout_bias: torch.Tensor,
        run: int = 0,
        task_name: str = "",
    ) -> PathModel:
        c = net.config
        distinct = distinct_modules(genotype)
        model = cls(
            c.input_dim,
            c.units,
            [len(d) for d in distinct],
            int(readout_weight.shape[0]),
            c.combine,
            genotype=genotype.tolist(),
            task_name=task_name,
        )
        copy_path_parameters(model, net, distinct, readout_weight, readout_bias, run)
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, C)`` for features ``x (n, input_dim)``."""
        a = x
        for w, b, k in zip(self.weights, self.biases, self.modules_per_layer, strict=True):
            h = torch.relu(torch.nn.functional.linear(a, w, b)).view(a.shape[0], k, self.units)
            a = h.mean(1) if self.combine == "mean" else h.sum(1)
        return self.readout(a)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).softmax(-1)

    def config_dict(self) -> dict[str, Any]:
        """Everything (besides the state_dict) needed to rebuild the module."""
        return {
            "format": FORMAT,
            "input_dim": self.input_dim,
            "units": self.units,
            "modules_per_layer": list(self.modules_per_layer),
            "n_classes": self.n_classes,
            "combine": self.combine,
            "genotype": self.genotype,
            "task_name": self.task_name,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None
    ) -> PathModel:
        if config.get("format") != FORMAT:
            raise ValueError(f"not a PathModel config (format={config.get('format')!r})")
        model = cls(
            config["input_dim"],
            config["units"],
            config["modules_per_layer"],
            config["n_classes"],
            config["combine"],
            genotype=config.get("genotype"),
            task_name=config.get("task_name", ""),
        )
        if state_dict is not None:
            model.load_state_dict(state_dict)
        return model
