"""Evolution settings (the paper's defaults), one frozen dataclass that goes in YAML."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pathnet_fer.pathnet.config import SHARED_UPDATES
from pathnet_fer.pathnet.sgd_recipe import PRECISIONS
from pathnet_fer.settings_dict import SettingsDict

FITNESS_MODES = ("train", "heldout")
PAIR_TRAINING = ("batched", "sequential")
BOUNDARIES = ("wrap", "clamp")
LR_SCHEDULES = ("constant", "cosine", "step")
TRAIN_PRECISIONS = PRECISIONS

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

    The training recipe of conv and block paths (off by default: the paper's plain SGD; each
    measured alone in docs/results-fer2013.md, "Training recipe"):
    ``momentum``, ``weight_decay`` (L2 on weights, not biases) as in ``torch.optim.SGD``;
    momentum buffers start at zero for each path's ``minibatches`` steps of a generation.
    ``lr_schedule``: the rate of generation g of a task of G generations: ``constant``;
    ``cosine`` from ``lr`` down to ``lr_end``; ``step`` x0.1 at G/2 and again at 3G/4.
    ``label_smoothing``: targets ``(1 - e) * onehot + e / C``.
    Augmentation on the fly, a fresh draw for every sample seen (from the task's seeded
    generator, so a seed gives the same draws): ``augment_flip`` (mirror half the
    faces), ``augment_shift`` (shift by up to this fraction of the crop side),
    ``augment_rotate`` (up to +- degrees), ``augment_scale`` (zoom by up to +- this
    fraction); one affine warp per image, bilinear, edges replicated.
    ``train_precision``: ``fp32`` (default) or ``bf16``: block paths' convolutions and
    batch norms run under bfloat16 autocast in training steps (weights, their updates,
    the readout and every evaluation stay float32). Faster on CPUs with bf16 units
    (docs/pathnet.md, "Speed of block modules"); block modules only.
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
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    lr_end: float = 0.0
    label_smoothing: float = 0.0
    augment_flip: bool = False
    augment_shift: float = 0.0
    augment_rotate: float = 0.0
    augment_scale: float = 0.0
    train_precision: str = "fp32"

    LATER_FIELDS = (
        "momentum",
        "weight_decay",
        "lr_schedule",
        "lr_end",
        "label_smoothing",
        "augment_flip",
        "augment_shift",
        "augment_rotate",
        "augment_scale",
        "train_precision",
    )

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
        self._check_recipe()
        for name, allowed in (
            ("lr_schedule", LR_SCHEDULES),
            ("train_precision", TRAIN_PRECISIONS),
            ("fitness", FITNESS_MODES),
            ("pair_training", PAIR_TRAINING),
            ("mutation_boundary", BOUNDARIES),
            ("shared_update", SHARED_UPDATES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"EvolutionConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )

    def _check_recipe(self) -> None:
        ranges = {
            "momentum": (0.0, 0.999),
            "weight_decay": (0.0, 1.0),
            "lr_end": (0.0, math.inf),
            "label_smoothing": (0.0, 0.999),
            "augment_shift": (0.0, 0.5),
            "augment_rotate": (0.0, 180.0),
            "augment_scale": (0.0, 0.9),
        }
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"EvolutionConfig.{name} must be a number, got {value!r}")
            if not (math.isfinite(value) or high == math.inf) or not low <= value <= high:
                raise ValueError(
                    f"EvolutionConfig.{name} must be in [{low:g}, {high:g}], got {value!r}"
                )
        if self.lr_end > self.lr:
            raise ValueError(
                f"EvolutionConfig.lr_end ({self.lr_end}) must not exceed lr ({self.lr})"
            )
        if not isinstance(self.augment_flip, bool):
            raise ValueError(
                f"EvolutionConfig.augment_flip must be true/false, got {self.augment_flip!r}"
            )

    @property
    def augments(self) -> bool:
        """True when any on-the-fly augmentation is on."""
        return bool(
            self.augment_flip or self.augment_shift or self.augment_rotate or self.augment_scale
        )

    def lr_at(self, generation: int) -> float:
        """The SGD rate of 0-based ``generation`` of a task of ``generations`` generations."""
        if self.lr_schedule == "constant" or self.generations <= 0:
            return float(self.lr)
        t = min(max(generation, 0), self.generations) / self.generations
        if self.lr_schedule == "cosine":
            return float(
                self.lr_end + (self.lr - self.lr_end) * 0.5 * (1.0 + math.cos(math.pi * t))
            )
        return float(self.lr * (0.1 if t >= 0.5 else 1.0) * (0.1 if t >= 0.75 else 1.0))

    def effective_mutation_rate(self, layers: int, max_active: int) -> float:
        """Per-element mutation probability: the setting, else 1/(N*L)."""
        return self.mutation_rate if self.mutation_rate is not None else 1.0 / (layers * max_active)
