"""The PathNet super-network: L layers x M modules, stacked per layer, R runs at once.

Layer ``l`` keeps all its modules in one tensor ``weights[l]`` of shape
``(R, M, *module_weight)`` and ``biases[l]`` of shape ``(R, M, *module_bias)``; the
module type (``PathNetConfig.module``: linear or conv, see ``module_type.py``) says what
a module is, how a set of paths runs forward and how its paths train. The leading run
dimension holds R independent super-networks (folds, iterations) that evolve together
as one batch. A path's forward pass gathers only its active modules.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from pathnet_fer.pathnet.config import SHARED_UPDATES, PathNetConfig
from pathnet_fer.pathnet.device import resolve_device
from pathnet_fer.pathnet.genotype import validate_genotypes
from pathnet_fer.pathnet.module_kinds import module_type_for
from pathnet_fer.pathnet.sgd_recipe import PLAIN, SgdRecipe

if TYPE_CHECKING:
    from torch import nn


class PathNet:
    """R independent PathNet super-networks with stacked module parameters.

    ``fixed[r, l, m]`` marks modules frozen by :meth:`fix` (they never change again).
    Parameters are initialised (``PathNetConfig.init``) from the net's own seeded CPU
    generator, so a seed gives the same network on any device.
    """

    def __init__(
        self,
        config: PathNetConfig,
        runs: int = 1,
        seed: int = 0,
        device: str | torch.device = "auto",
    ) -> None:
        if not isinstance(config, PathNetConfig):
            raise TypeError(f"config must be a PathNetConfig, got {type(config).__name__}")
        if not isinstance(runs, int) or runs < 1:
            raise ValueError(f"runs must be a positive int, got {runs!r}")
        self.config = config
        self.runs = runs
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.generator = torch.Generator().manual_seed(self.seed)
        c = config
        self.module_type = module_type_for(config)
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        for layer in range(c.layers):
            kind = self.module_type
            self.weights.append(
                torch.empty(runs, c.modules, *kind.weight_shape(layer), device=self.device)
            )
            self.biases.append(
                torch.empty(runs, c.modules, *kind.bias_shape(layer), device=self.device)
            )
        self.fixed = torch.zeros(runs, c.layers, c.modules, dtype=torch.bool)
        self.fixed_tasks: list[str] = []
        self._initialise(torch.ones(runs, c.layers, c.modules, dtype=torch.bool))

    # ------------------------------------------------------------------ parameters
    def _uniform(self, shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
        bound = 1.0 / math.sqrt(fan_in)
        return (torch.rand(shape, generator=self.generator) * 2 - 1).mul_(bound).to(self.device)

    def _initialise(self, which: torch.Tensor) -> None:
        """(Re-)draw the modules where ``which[r, l, m]`` is True; fresh draws for all
        modules are made every time (fixed RNG consumption), then only ``which`` is written."""
        c = self.config
        for layer in range(c.layers):
            fan_in = self.module_type.fan_in(layer)
            shape_w, shape_b = tuple(self.weights[layer].shape), tuple(self.biases[layer].shape)
            custom = self.module_type.initial_values(layer, self.runs, self.generator)
            if custom is not None:  # module types with their own parts (block: BN)
                w, b = custom[0].to(self.device), custom[1].to(self.device)
            elif c.init == "torch-linear":
                w = self._uniform(shape_w, fan_in)
                b = self._uniform(shape_b, fan_in)
            else:
                gain = c.max_active if c.combine == "mean" else 1.0 / c.max_active
                std = math.sqrt(2.0 * gain / fan_in)
                w = torch.randn(shape_w, generator=self.generator).mul_(std).to(self.device)
                b = torch.zeros(shape_b, device=self.device)
            mask = which[:, layer].to(self.device)
            self.weights[layer][mask] = w[mask]
            self.biases[layer][mask] = b[mask]

    def new_readout(self, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fresh readout layer per run: weight ``(R, C, F)``, bias ``(R, C)``
        (F: ``config.feature_dim()``, the last layer's output width)."""
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        u = self.config.feature_dim()
        return self._uniform((self.runs, n_classes, u), u), self._uniform((self.runs, n_classes), u)

    def parameter_count(self) -> int:
        """Parameters of the whole super-network, one run (without readouts)."""
        return sum(
            w[0].numel() + b[0].numel() for w, b in zip(self.weights, self.biases, strict=True)
        )

    # ------------------------------------------------------------------ transfer
    def fix(self, task: Any) -> None:
        """Transfer step: FIX the task's best path in every run (union with paths fixed
        before) and RE-INITIALISE every module that is not fixed (the paper).

        ``task``: a finished Task (its ``best_paths``), or genotypes ``(R, L, N)``.
        """
        if isinstance(task, torch.Tensor):
            paths, name = task, "paths"
        else:
            paths = getattr(task, "best_paths", None)
            name = getattr(task, "name", "task")
            if paths is None:
                raise ValueError(f"task {name!r} has no best_paths yet: finish evolve() first")
            if getattr(task, "fixed_into_net", False):
                raise ValueError(f"task {name!r} was already fixed into this net")
        validate_genotypes(paths, self.config.layers, self.config.max_active, self.config.modules)
        if paths.dim() != 3 or paths.shape[0] != self.runs:
            raise ValueError(
                f"{name!r}: need one path per run, shape ({self.runs}, L, N), got {tuple(paths.shape)}"
            )
        mark = torch.zeros_like(self.fixed)
        mark.scatter_(2, paths.cpu().long(), True)
        self.fixed |= mark
        self._initialise(~self.fixed)
        self.fixed_tasks.append(name)
        if not isinstance(task, torch.Tensor):
            task.fixed_into_net = True

    def adopt_fixed(self, donors: list[tuple[dict[str, Any], int]], name: str) -> None:
        """Transfer from nets trained elsewhere: run ``r`` takes the FIXED modules of run
        ``donors[r][1]`` of the net whose ``state()`` is ``donors[r][0]`` (bit for bit),
        and every module not fixed is re-initialised from this net's generator, exactly
        as :meth:`fix` leaves a net. ``name``: the donor task, recorded in ``fixed_tasks``."""
        if len(donors) != self.runs:
            raise ValueError(f"need one donor per run ({self.runs}), got {len(donors)}")
        for r, (state, run) in enumerate(donors):
            donor_config = PathNetConfig.from_dict(state["config"]).to_dict()
            if donor_config != self.config.to_dict():
                raise ValueError(f"donor of run {r} has another PathNet configuration")
            fixed = state["fixed"][run]
            for layer in range(self.config.layers):
                mask = fixed[layer].to(self.device)
                self.weights[layer][r][mask] = state["weights"][layer][run].to(self.device)[mask]
                self.biases[layer][r][mask] = state["biases"][layer][run].to(self.device)[mask]
            self.fixed[r] |= fixed
        self._initialise(~self.fixed)
        self.fixed_tasks.append(name)

    # ------------------------------------------------------------------ inference
    def check_input(self, x: Any) -> torch.Tensor:
        """Inputs as float32 ``(n, input_dim)`` on the net's device, or a clear error."""
        t = torch.as_tensor(x)
        if t.dim() != 2 or t.shape[1] != self.config.input_dim:
            raise ValueError(
                f"inputs must have shape (n, {self.config.input_dim}), got {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"inputs must be floating point (features in [0, 1]), got {t.dtype}")
        return t.to(self.device, torch.float32)

    def forward_paths(
        self,
        x: torch.Tensor,
        paths: torch.Tensor,
        readout_weight: torch.Tensor,
        readout_bias: torch.Tensor,
        run: int = 0,
    ) -> torch.Tensor:
        """Logits ``(P, n, C)`` of P paths ``(P, L, N)`` of run ``run`` on ``x (n, D)``."""
        return self.module_type.forward_paths(self, x, paths, readout_weight, readout_bias, run)

    def train_paths(
        self,
        runs: torch.Tensor,
        paths: torch.Tensor,
        readout_weight: torch.Tensor,
        readout_bias: torch.Tensor,
        x_all: torch.Tensor,
        y_all: torch.Tensor,
        batch_index: torch.Tensor,
        lr: float,
        shared_update: str = "sum",
        recipe: SgdRecipe = PLAIN,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train G paths ``(G, L, N)`` of runs ``runs (G,)`` by SGD in batched steps
        (``batch_index (S, G, B)`` rows of ``x_all``); readouts updated in place. Returns
        per path the correct count and summed loss over the S*B samples seen.
        ``recipe``: momentum, weight decay, soft targets, augmentation (conv modules)."""
        if shared_update not in SHARED_UPDATES:
            raise ValueError(
                f"shared_update must be one of {SHARED_UPDATES}, got {shared_update!r}"
            )
        args = (runs, paths, readout_weight, readout_bias, x_all, y_all, batch_index, lr)
        if recipe.plain:
            return self.module_type.train_paths(self, *args, shared_update)
        if recipe.precision != "fp32" and self.config.module != "block":
            raise ValueError(
                f"train_precision {recipe.precision!r} is a setting of block modules; this "
                f"net has {self.config.module!r} modules (set evolution.train_precision=fp32)"
            )
        if not self.config.image_modules:
            raise ValueError(
                "momentum, weight decay, label smoothing, soft targets and augmentation are "
                f"settings of conv modules (and block modules); this net has {self.config.module!r} modules"
            )
        return self.module_type.train_paths(self, *args, shared_update, recipe)

    def _task_path(self, task: Any, run: int, path: torch.Tensor | None) -> torch.Tensor:
        if not 0 <= run < self.runs:
            raise IndexError(f"run {run} out of range: the net has {self.runs} runs")
        if path is None:
            best = getattr(task, "best_paths", None)
            if best is None:
                best = task.current_best_paths()
            path = best[run]
        path = torch.as_tensor(path)
        validate_genotypes(path, self.config.layers, self.config.max_active, self.config.modules)
        return path.reshape(self.config.layers, self.config.max_active)

    @torch.no_grad()
    def predict_proba(self, x: Any, task: Any, run: int = 0, path: torch.Tensor | None = None):
        """Class probabilities ``(n, C)`` with the task's readout and its best path (or ``path``)."""
        genotype = self._task_path(task, run, path)
        logits = self.forward_paths(
            self.check_input(x),
            genotype.unsqueeze(0),
            task.readout_weight[run],
            task.readout_bias[run],
            run,
        )[0]
        return logits.softmax(-1)

    @torch.no_grad()
    def predict(self, x: Any, task: Any, run: int = 0, path: torch.Tensor | None = None):
        """Predicted class index ``(n,)``."""
        return self.predict_proba(x, task, run, path).argmax(-1)

    def path_model(self, task: Any, run: int = 0, path: torch.Tensor | None = None) -> nn.Module:
        """A standalone ``nn.Module`` holding only this path's modules and the task readout
        (``PathModel`` for linear modules, ``ConvPathModel`` for conv, ``BlockPathModel``
        for block)."""
        genotype = self._task_path(task, run, path)
        return self.module_type.path_model(
            self,
            genotype,
            task.readout_weight[run],
            task.readout_bias[run],
            run,
            getattr(task, "name", ""),
        )

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild this net exactly (CPU tensors)."""
        return {
            "config": self.config.to_dict(),
            "runs": self.runs,
            "seed": self.seed,
            "weights": [w.cpu() for w in self.weights],
            "biases": [b.cpu() for b in self.biases],
            "fixed": self.fixed.clone(),
            "fixed_tasks": list(self.fixed_tasks),
            "generator": self.generator.get_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str | torch.device = "auto") -> PathNet:
        net = cls(
            PathNetConfig.from_dict(state["config"]),
            runs=state["runs"],
            seed=state["seed"],
            device=device,
        )
        # Copies: a net rebuilt from another live net's state() must not share its tensors.
        net.weights = [w.to(net.device, copy=True) for w in state["weights"]]
        net.biases = [b.to(net.device, copy=True) for b in state["biases"]]
        net.fixed = state["fixed"].clone()
        net.fixed_tasks = list(state["fixed_tasks"])
        net.generator.set_state(state["generator"])
        return net

    def __repr__(self) -> str:
        c = self.config
        if c.image_modules:
            return (
                f"PathNet({c.module}, L={c.layers}, M={c.modules}, channels={list(c.channels)}, "
                f"N={c.max_active}, image={c.image_shape}, combine={c.combine!r}, "
                f"runs={self.runs}, device={self.device}, fixed={int(self.fixed.sum())} modules)"
            )
        return (
            f"PathNet(L={c.layers}, M={c.modules}, U={c.units}, N={c.max_active}, "
            f"input_dim={c.input_dim}, combine={c.combine!r}, runs={self.runs}, "
            f"device={self.device}, fixed={int(self.fixed.sum())} modules)"
        )
