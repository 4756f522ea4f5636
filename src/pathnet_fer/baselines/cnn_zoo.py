"""The CNN baselines of the paper's Table I: ImageNet backbones with a new 6-way head.

Each backbone is built as its full 1000-class ImageNet architecture (so ImageNet weights
load strictly), then its last linear layer is replaced by the identity: what remains
maps an image to a feature vector, and a fresh ``nn.Linear(num_features, n_classes)``
head classifies emotions. ``CNNClassifier.prepare`` turns face crops (uint8, grey or
RGB, any size) into the input the backbone expects: grey replicated to 3 channels,
resized, normalised with the statistics the weights were trained with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import nn

from pathnet_fer.baselines.efficientnet_lite import EfficientNetLite0
from pathnet_fer.baselines.names import CNN_MODELS
from pathnet_fer.baselines.weights import WeightsChoice, load_weights, resolve_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class CifarNet(nn.Module):
    """The small CIFAR-10 CNN of TF-slim ("cifarnet"), the paper's "Cifar" row.

    conv5x5(64)-pool-LRN-conv5x5(64)-LRN-pool-fc384-fc192-logits, trained from scratch.
    """

    def __init__(self, num_classes: int = 10, input_size: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, padding=1),
            nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0),
            nn.Conv2d(64, 64, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0),
            nn.MaxPool2d(3, 2, padding=1),
        )
        side = (input_size + 3) // 4  # two stride-2 pools with padding 1
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * side * side, 384),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(384, 192),
            nn.ReLU(inplace=True),
        )
        self.fc: nn.Module = nn.Linear(192, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.classifier(self.features(x)))


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and feed it."""

    name: str
    build: Callable[[bool, int], nn.Module]  # (pretrained, input_size) -> 1000-class model
    classifier: str  # dotted attribute path of the last linear layer
    input_size: int  # native input side (what the ImageNet weights saw)
    min_input_size: int  # smallest side the architecture accepts
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def _tv(name: str) -> Callable[[bool, int], nn.Module]:
    def build(pretrained: bool, input_size: int) -> nn.Module:
        return tvm.get_model(name, weights=None)

    return build


def _inception(pretrained: bool, input_size: int) -> nn.Module:
    # transform_input=True as torchvision sets it for its ImageNet weights: the model
    # takes ImageNet-normalised input and converts it to the [-1, 1] scaling it was
    # trained on. Aux logits exist so the weights load strictly; they are dropped later.
    return tvm.inception_v3(
        weights=None, aux_logits=True, transform_input=True, init_weights=not pretrained
    )


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("resnet18", _tv("resnet18"), "fc", 224, 32),
        BackboneSpec("resnet50", _tv("resnet50"), "fc", 224, 32),
        BackboneSpec("resnet101", _tv("resnet101"), "fc", 224, 32),
        BackboneSpec("resnet152", _tv("resnet152"), "fc", 224, 32),
        BackboneSpec("mobilenet_v2", _tv("mobilenet_v2"), "classifier.1", 224, 32),
        BackboneSpec("mobilenet_v3_small", _tv("mobilenet_v3_small"), "classifier.3", 224, 32),
        BackboneSpec("mobilenet_v3_large", _tv("mobilenet_v3_large"), "classifier.3", 224, 32),
        BackboneSpec("vgg19", _tv("vgg19"), "classifier.6", 224, 32),
        BackboneSpec("inception_v3", _inception, "fc", 299, 75),
        BackboneSpec(
            "efficientnet_lite0",
            lambda pretrained, size: EfficientNetLite0(),
            "_fc",
            224,
            32,
            EfficientNetLite0.input_mean,
            EfficientNetLite0.input_std,
        ),
        BackboneSpec(
            "cifar",
            lambda pretrained, size: CifarNet(10, size),
            "fc",
            32,
            8,
            (0.5, 0.5, 0.5),
            (0.5, 0.5, 0.5),
        ),
    )
}
MODEL_NAMES = CNN_MODELS
if set(BACKBONES) != set(MODEL_NAMES):  # the torch-free list the CLI shows must match
    raise ImportError(f"baselines.names.CNN_MODELS {MODEL_NAMES} != backbones {tuple(BACKBONES)}")


def get_spec(name: str) -> BackboneSpec:
    """The spec of a backbone, or a clear error listing the known names."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown baseline model {name!r}; known: {', '.join(MODEL_NAMES)}"
        ) from None


def _replace_last_linear(model: nn.Module, dotted: str) -> int:
    """Swap the ImageNet classifier for the identity; return its input width."""
    *parents, last = dotted.split(".")
    owner = model
    for part in parents:
        owner = getattr(owner, part)
    linear = owner[int(last)] if last.isdigit() else getattr(owner, last)
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"{dotted} of {type(model).__name__} is not a Linear layer")
    if last.isdigit():
        owner[int(last)] = nn.Identity()
    else:
        setattr(owner, last, nn.Identity())
    return linear.in_features


class CNNClassifier(nn.Module):
    """A backbone (ImageNet classifier removed) plus a new emotion head."""

    def __init__(
        self,
        name: str,
        backbone: nn.Module,
        num_features: int,
        n_classes: int,
        input_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.name = name
        self.backbone = backbone
        self.head = nn.Linear(num_features, n_classes)
        self.num_features = num_features
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def prepare(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 crops ``(n, h, w)`` grey or ``(n, h, w, 3)`` RGB -> normalised ``(n, 3, s, s)``."""
        x = torch.as_tensor(images)
        if x.ndim == 3:
            x = x.unsqueeze(-1)
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise ValueError(f"expected (n, h, w) or (n, h, w, 3) images, got {tuple(x.shape)}")
        x = x.to(self.mean.device).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.input_size, self.input_size):
            shrink = x.shape[-1] > self.input_size
            x = F.interpolate(
                x,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
                antialias=shrink,
            )
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of prepared input."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_imagenet_model(
    name: str, weights: str = "auto", input_size: int | None = None
) -> tuple[nn.Module, WeightsChoice]:
    """The full 1000-class architecture with its weights loaded (e.g. to check them)."""
    spec = get_spec(name)
    choice = resolve_weights(name, weights)
    model = spec.build(choice.pretrained, int(input_size or spec.input_size))
    load_weights(model, choice)
    return model, choice


def build_cnn(
    name: str,
    n_classes: int = 6,
    weights: str = "auto",
    input_size: int | None = None,
) -> tuple[CNNClassifier, WeightsChoice]:
    """Build backbone ``name`` with the weights ``weights`` resolves to, and a new head.

    Raises ``WeightsNotFoundError`` (naming every option) when pretrained weights were
    asked for and cannot be found; random init happens only for ``weights="none"`` (and
    for the ``cifar`` model, which is trained from scratch by design).
    """
    spec = get_spec(name)
    size = int(input_size or spec.input_size)
    if size < spec.min_input_size:
        raise ValueError(f"{name} needs input_size >= {spec.min_input_size}, got {size}")
    model, choice = build_imagenet_model(name, weights, size)
    if name == "inception_v3":
        model.AuxLogits = None
        model.aux_logits = False
    num_features = _replace_last_linear(model, spec.classifier)
    return CNNClassifier(name, model, num_features, n_classes, size, spec.mean, spec.std), choice


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those that train)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
