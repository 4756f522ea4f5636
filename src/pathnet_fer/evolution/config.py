"""Evolution settings (the paper's defaults), one frozen dataclass that goes in YAML."""

from __future__ import annotations

from dataclasses import dataclass

from pathnet_fer.settings_dict import SettingsDict

FITNESS_MODES = ("train", "heldout")
PAIR_TRAINING = ("batched", "sequential")
BOUNDARIES = ("wrap", "clamp")
SHARED_UPDATES = ("sum", "mean")

# Fields that may differ when a checkpointed task is resumed (extending a run is exact).
RESUMABLE_FIELDS = ("generations",)


@dataclass(frozen=True)
class EvolutionConfig(SettingsDict):
    """Binary-tournament (microbial) GA over paths.

    Paper defaults: population 20, 1000 generations, each path trained by SGD
    (lr 0.02, no momentum, no weight decay) on 50 minibatches of 16; fitness = fraction
    of training samples classified correctly during those minibatches; mutation per
    element with probability 1/(N*L) (``mutation_rate=None``) by a shift uniform in
    {-2..2} (0 included, ``mutation_include_zero``); ``mutation_boundary`` wrap|clamp.

    ``fitness="heldout"``: accuracy on the TaskData's validation split after training.
    ``pair_training``: ``batched`` (the two paths of a generation trained in one batched
    step, deltas of shared parameters combined by ``shared_update`` sum|mean) or
    ``sequential`` (one after the other, the paper).
    ``selection_samples``: training samples (fixed random subset per run) used to
    re-evaluate the final population when picking the best path (None = all).
    """

    generations: int = 1000
    population: int = 20
    minibatches: int = 50
    batch_size: int = 16
    lr: float = 0.02
    fitness: str = "train"
    mutation_rate: float | None = None
    mutation_shift: int = 2
    mutation_include_zero: bool = True
    mutation_boundary: str = "wrap"
    pair_training: str = "batched"
    shared_update: str = "sum"
    selection_samples: int | None = 2048

    def __post_init__(self) -> None:
        for name in ("population", "minibatches", "batch_size", "mutation_shift"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"EvolutionConfig.{name} must be a positive int, got {value!r}")
        if not isinstance(self.generations, int) or self.generations < 0:
            raise ValueError(
                f"EvolutionConfig.generations must be an int >= 0, got {self.generations!r}"
            )
        if self.population < 2:
            raise ValueError("EvolutionConfig.population must be >= 2 (a tournament needs two)")
        if not (isinstance(self.lr, int | float) and self.lr > 0):
            raise ValueError(f"EvolutionConfig.lr must be > 0, got {self.lr!r}")
        if self.mutation_rate is not None and not 0.0 <= self.mutation_rate <= 1.0:
            raise ValueError(
                f"EvolutionConfig.mutation_rate must be in [0, 1], got {self.mutation_rate}"
            )
        if self.selection_samples is not None and self.selection_samples < 1:
            raise ValueError("EvolutionConfig.selection_samples must be >= 1 or None")
        for name, allowed in (
            ("fitness", FITNESS_MODES),
            ("pair_training", PAIR_TRAINING),
            ("mutation_boundary", BOUNDARIES),
            ("shared_update", SHARED_UPDATES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"EvolutionConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )

    def effective_mutation_rate(self, layers: int, max_active: int) -> float:
        """Per-element mutation probability: the setting, else 1/(N*L)."""
        return self.mutation_rate if self.mutation_rate is not None else 1.0 / (layers * max_active)
