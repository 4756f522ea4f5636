"""A task being learned: its population, readout, RNG, data streams and history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from pathnet_fer.evolution.config import EvolutionConfig
from pathnet_fer.evolution.evaluate import evaluate_population, pick_best
from pathnet_fer.evolution.sampling import MinibatchStreams

if TYPE_CHECKING:
    import pandas as pd

    from pathnet_fer.evolution.data import PreparedData
    from pathnet_fer.pathnet.supernet import PathNet

HISTORY_KEYS = ("pairs", "fitness", "loss", "train_accuracy", "winner", "winner_genotypes")


class Task:
    """State of one task across R runs. Created by :func:`evolve`.

    ``population (R, P, L, N)`` genotypes; ``member_fitness (R, P)`` last fitness of
    each member (NaN: never evaluated since it was created); ``readout_weight (R, C, U)``,
    ``readout_bias (R, C)``: the task's own readout (one per task, shared by all its
    paths); ``generation``: generations done; ``best_paths (R, L, N)`` and
    ``best_fitness (R,)`` once the task is finished.
    """

    def __init__(
        self,
        name: str,
        n_classes: int,
        config: EvolutionConfig,
        seed: int,
        population: torch.Tensor,
        readout_weight: torch.Tensor,
        readout_bias: torch.Tensor,
        generator: torch.Generator,
        streams: MinibatchStreams,
    ) -> None:
        self.name = name
        self.n_classes = n_classes
        self.config = config
        self.seed = seed
        self.population = population
        self.member_fitness = torch.full(population.shape[:2], float("nan"))
        self.readout_weight = readout_weight
        self.readout_bias = readout_bias
        self.generator = generator
        self.streams = streams
        self.generation = 0
        self.history: dict[str, list[torch.Tensor]] = {k: [] for k in HISTORY_KEYS}
        self.best_paths: torch.Tensor | None = None
        self.best_fitness: torch.Tensor | None = None
        self.selection_rows: list[torch.Tensor] = []
        self.data_fingerprint: list[dict[str, Any]] = []
        self.fixed_into_net = False
        self.elapsed_seconds = 0.0
        self._net: PathNet | None = None
        self._data: PreparedData | None = None

    @property
    def runs(self) -> int:
        return int(self.population.shape[0])

    @property
    def finished(self) -> bool:
        return self.best_paths is not None

    def current_best_paths(self, reevaluate: bool = False) -> torch.Tensor:
        """Best genotype of the population NOW, per run ``(R, L, N)``, for mid-run checks.

        ``reevaluate=False``: highest recorded fitness (members never evaluated are
        skipped; if none was, member 0). ``reevaluate=True``: a fresh evaluation pass of
        every member on the selection data (as at the end of the task; costs a forward
        pass of the population).
        """
        if reevaluate:
            return self._reevaluate()[0]
        score = torch.nan_to_num(self.member_fitness, nan=-1.0)
        return self.population[torch.arange(self.runs), score.argmax(1)].clone()

    def _reevaluate(self) -> tuple[torch.Tensor, torch.Tensor]:

        if self._net is None or self._data is None:
            raise RuntimeError(
                "re-evaluation needs the task's training data, held only while evolve() runs "
                "(after it, use task.best_paths)"
            )
        acc = evaluate_population(self._net, self, self._data)  # (R, P)
        best = pick_best(acc, self.population)
        rows = torch.arange(self.runs)
        return self.population[rows, best].clone(), acc[rows, best]

    def history_tensors(self) -> dict[str, torch.Tensor]:
        """Per-generation records stacked: ``fitness/loss/train_accuracy (T, R, 2)``,
        ``pairs (T, R, 2)``, ``winner (T, R)``, ``winner_genotypes (T, R, L, N)``."""
        return {k: (torch.stack(v) if v else torch.empty(0)) for k, v in self.history.items()}

    def history_frame(self) -> pd.DataFrame:
        """One row per (generation, run, contestant): ``generation, run, slot, member,
        fitness, loss, train_accuracy, won``."""
        import pandas as pd

        h = self.history_tensors()
        if not self.history["fitness"]:
            return pd.DataFrame(
                columns=[
                    "generation",
                    "run",
                    "slot",
                    "member",
                    "fitness",
                    "loss",
                    "train_accuracy",
                    "won",
                ]
            )
        t, r, _ = h["fitness"].shape
        gen = torch.arange(1, t + 1).view(t, 1, 1).expand(t, r, 2)
        run = torch.arange(r).view(1, r, 1).expand(t, r, 2)
        slot = torch.arange(2).view(1, 1, 2).expand(t, r, 2)
        won = slot == h["winner"].unsqueeze(-1)
        return pd.DataFrame(
            {
                "generation": gen.reshape(-1).numpy(),
                "run": run.reshape(-1).numpy(),
                "slot": slot.reshape(-1).numpy(),
                "member": h["pairs"].reshape(-1).numpy(),
                "fitness": h["fitness"].reshape(-1).numpy(),
                "loss": h["loss"].reshape(-1).numpy(),
                "train_accuracy": h["train_accuracy"].reshape(-1).numpy(),
                "won": won.reshape(-1).numpy(),
            }
        )

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_classes": self.n_classes,
            "config": self.config.to_dict(),
            "seed": self.seed,
            "population": self.population.clone(),
            "member_fitness": self.member_fitness.clone(),
            "readout_weight": self.readout_weight.cpu(),
            "readout_bias": self.readout_bias.cpu(),
            "generator": self.generator.get_state(),
            "streams": self.streams.state(),
            "generation": self.generation,
            "history": {k: [t.clone() for t in v] for k, v in self.history.items()},
            "best_paths": None if self.best_paths is None else self.best_paths.clone(),
            "best_fitness": None if self.best_fitness is None else self.best_fitness.clone(),
            "selection_rows": [r.clone() for r in self.selection_rows],
            "data_fingerprint": self.data_fingerprint,
            "fixed_into_net": self.fixed_into_net,
            "elapsed_seconds": self.elapsed_seconds,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> Task:
        gen = torch.Generator()
        gen.set_state(state["generator"])
        task = cls(
            name=state["name"],
            n_classes=state["n_classes"],
            config=EvolutionConfig.from_dict(state["config"]),
            seed=state["seed"],
            population=state["population"].clone(),
            readout_weight=state["readout_weight"].to(device),
            readout_bias=state["readout_bias"].to(device),
            generator=gen,
            streams=MinibatchStreams.from_state(state["streams"]),
        )
        task.member_fitness = state["member_fitness"].clone()
        task.generation = state["generation"]
        task.history = {k: [t.clone() for t in state["history"].get(k, [])] for k in HISTORY_KEYS}
        task.best_paths = state["best_paths"]
        task.best_fitness = state["best_fitness"]
        task.selection_rows = [r.clone() for r in state["selection_rows"]]
        task.data_fingerprint = state["data_fingerprint"]
        task.fixed_into_net = state["fixed_into_net"]
        task.elapsed_seconds = state["elapsed_seconds"]
        return task

    def __repr__(self) -> str:
        status = "finished" if self.finished else "running"
        return (
            f"Task({self.name!r}, classes={self.n_classes}, runs={self.runs}, "
            f"generation={self.generation}/{self.config.generations}, {status})"
        )
