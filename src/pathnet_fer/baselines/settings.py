"""The ``baselines:`` section of a config: which baselines run, and their arm labels."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pathnet_fer.baselines.cnn_zoo import MODEL_NAMES
from pathnet_fer.baselines.finetune import FINETUNE_MODES

PATH_CNN_ARMS = ("cnn-scratch", "cnn-head", "cnn-full", "cnn-zeroshot")
"""The CNN the size of one conv PathNet path (``path_cnn.py``): from scratch, pre-trained on
the set's source task then head-only / fully fine-tuned, and the source model zero-shot."""
SOURCE_ARMS = {
    "mlp-finetune": "mlp",
    "mlp-zeroshot": "mlp",
    "cnn-head": "cnn",
    "cnn-full": "cnn",
    "cnn-zeroshot": "cnn",
}
"""Arms that start from a source model (its kind): trained once per source task
(``source_models.py``), shared by every destination fold that has the same source task."""
# Baselines on the flattened crops PathNet sees (``mlp`` and ``cnn`` expand to arms).
VECTOR_BASELINES = (
    "mlp", "mlp-scratch", "mlp-finetune", "mlp-zeroshot", "progressive", "logreg",
    "cnn", *PATH_CNN_ARMS,
)  # fmt: skip
CONVERGENCE_FITS = frozenset({"logreg"})
"""Arms fit to convergence, not to a budget of samples seen (no ``samples`` row)."""
FROZEN_BODY = frozenset({"cnn-head"})
"""Path-sized arms that train only a new readout on the source model's frozen layers."""
KNOWN_MODELS = (*MODEL_NAMES, *VECTOR_BASELINES)
# Runs offline with the weights packages installed: the default model list.
DEFAULT_MODELS = ("mobilenet_v2", "efficientnet_lite0", "cifar", "mlp", "progressive", "logreg")


class BaselineConfigError(ValueError):
    """A bad ``baselines:`` setting, with the key in the message."""


@dataclass
class BaselineSettings:
    """The ``baselines:`` section of an experiment config (all keys optional)."""

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    finetune: list[str] = field(default_factory=lambda: ["head"])  # head and/or full
    weights: dict[str, str] = field(
        default_factory=dict
    )  # model -> auto|torchvision|package|none|PATH
    default_weights: str = "auto"
    input_size: int | None = None  # None: each backbone's native size (224, 299, 32)
    cnn_lr: float = 0.01
    cnn_momentum: float = 0.9
    mlp_lr: float | None = None  # None: the PathNet SGD rate (evolution.lr)
    conv_lr: float | None = None  # the path-sized CNN's SGD rate (None: evolution.lr)
    iterations: int | None = None  # None: protocol.iterations
    folds: list[int] | None = None  # run only these folds, 1-based as in metrics.csv (None: all)
    sets: list[str] | None = None  # run only these experiment sets (None: all)
    max_samples: int | None = None  # cap on samples per task (None: the PathNet budget)
    cnn_threads: int | None = None  # torch threads per CNN job (None: 1 small, else its share)

    def validate(self) -> BaselineSettings:
        unknown = [m for m in self.models if m not in KNOWN_MODELS]
        if unknown:
            raise BaselineConfigError(
                f"baselines.models: unknown {unknown}; known: {', '.join(KNOWN_MODELS)}"
            )
        if not self.models:
            raise BaselineConfigError("baselines.models is empty")
        bad = [m for m in self.finetune if m not in FINETUNE_MODES]
        if bad or not self.finetune:
            raise BaselineConfigError(
                f"baselines.finetune must list {' and/or '.join(FINETUNE_MODES)}, got {self.finetune}"
            )
        for key in ("conv_lr", "mlp_lr"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise BaselineConfigError(f"baselines.{key} must be > 0 or null, got {value}")
        for key in ("iterations", "max_samples", "input_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise BaselineConfigError(f"baselines.{key} must be >= 1 or null, got {value}")
        return self

    def weights_for(self, model: str) -> str:
        return self.weights.get(model, self.default_weights)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BaselineSettings:
        data = dict(data or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise BaselineConfigError(
                f"unknown key(s) {', '.join('baselines.' + k for k in unknown)}; known: {', '.join(names)}"
            )
        for key in ("models", "finetune", "folds", "sets"):
            if isinstance(data.get(key), str):
                data[key] = [s.strip() for s in data[key].split(",") if s.strip()]
            elif isinstance(data.get(key), int):
                data[key] = [data[key]]
        if isinstance(data.get("weights"), str):
            data["weights"] = parse_weights_option(data["weights"])
        if "weights" in data and "*" in data["weights"]:
            data["default_weights"] = data["weights"].pop("*")
        return cls(**data).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_weights_option(text: str) -> dict[str, str]:
    """``--weights`` value -> {model: spec}; a bare value applies to every model (``*``).

    ``auto`` | ``none`` | ``torchvision`` | ``package`` | ``PATH`` | ``model=SPEC,model=SPEC``.
    """
    out: dict[str, str] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        model, sep, spec = part.partition("=")
        if sep and model in KNOWN_MODELS:
            out[model] = spec
        elif sep:
            raise BaselineConfigError(f"--weights {part!r}: unknown model {model!r}")
        else:
            out["*"] = part
    return out


def expand_arms(settings: BaselineSettings) -> list[tuple[str, str]]:
    """(model, mode) pairs to run: CNNs x fine-tune modes, and the vector baselines."""
    pairs: list[tuple[str, str]] = []
    for model in settings.models:
        if model == "mlp":
            pairs += [("mlp-scratch", ""), ("mlp-finetune", "")]
        elif model == "cnn":
            pairs += [(arm, "") for arm in PATH_CNN_ARMS]
        elif model in VECTOR_BASELINES:
            pairs.append((model, ""))
        elif model == "cifar" or settings.weights_for(model) == "none":
            pairs.append((model, "full"))  # from scratch: always trains fully
        else:
            pairs += [(model, mode) for mode in settings.finetune]
    return list(dict.fromkeys(pairs))


# Settings that only select which runs happen (not what a run computes): a resumed run may
# change them.
SELECTION_KEYS = ("models", "finetune", "folds", "sets", "iterations", "cnn_threads", "weights")


def arm_label(model: str, mode: str, settings: BaselineSettings) -> str:
    """The ``arm`` column of a (model, mode) pair in metrics.csv."""
    if model in VECTOR_BASELINES:
        return model
    if model == "cifar" or settings.weights_for(model) == "none":
        return f"{model}-scratch"
    return f"{model}-{mode}"
