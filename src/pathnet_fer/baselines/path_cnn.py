"""A plain CNN the size of one conv PathNet path, and zero-shot class mapping.

"The same size as one path" (as ``mlp.py`` for linear modules): a conv path activates N
(``max_active``) modules of ``channels[l]`` filters in each layer and averages (or sums)
their ReLU maps. This CNN has, per layer, ONE ``kernel x kernel`` convolution with
``channels[l] x N`` output channels (same padding) + ReLU, fully connected to the previous
layer's ``channels[l-1] x N`` maps, the same downsampling (2x2 max-pool after every layer
but the last, or stride-2 convolutions), the same ``input_norm`` (per-image zero mean,
unit variance) and the same readout (last maps flattened or globally averaged). A path
is this CNN with its filters tied by the averaging of module outputs, so the CNN can
express everything one path can; it has more weights, none of PathNet's structure, and
no evolution. Inputs are the flattened crops every PathNet model takes.

Initialisation: He-normal convolutions (std sqrt(2 / fan_in), biases 0), the scale
PathNet's ``he-combine`` gives a layer's combined output; readout ``nn.Linear``'s default
(PathNet's readouts use the same).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pathnet_fer.pathnet.config import conv_map_sizes
from pathnet_fer.pathnet.conv_ops import (
    as_images,
    layer_stride_pool,
    max_pool_2x2,
    readout_features,
)


@dataclass(frozen=True)
class PathCNNConfig:
    """Shape of the path-sized CNN (built from a conv ``PathNetConfig`` by ``like_path``)."""

    image_shape: tuple[int, int, int]  # (H, W, C) of a flattened crop
    channels: tuple[int, ...]  # per layer: the path's channels x max_active
    kernel: int = 3
    downsample: str = "pool"  # pool | stride | none
    readout: str = "flatten"  # flatten | avg
    input_norm: str = "image"  # image | none

    @classmethod
    def like_path(cls, net: Any) -> PathCNNConfig:
        """The CNN matching one path of a conv ``PathNetConfig`` (N x channels per layer)."""
        if net.module != "conv" or net.image_shape is None:
            raise ValueError("like_path needs a conv PathNetConfig with an image_shape")
        return cls(
            image_shape=tuple(int(v) for v in net.image_shape),
            channels=tuple(int(c) * int(net.max_active) for c in net.channels),
            kernel=int(net.kernel),
            downsample=net.downsample,
            readout=net.readout_features,
            input_norm=net.input_norm,
        )

    def feature_dim(self) -> int:
        if self.readout == "avg":
            return self.channels[-1]
        h, w = conv_map_sizes(self.image_shape[:2], len(self.channels), self.downsample)[-1]
        return self.channels[-1] * h * w

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["image_shape"], out["channels"] = list(self.image_shape), list(self.channels)
        return out


class PathCNN(nn.Module):
    """``len(channels)`` conv layers and a replaceable readout, on flattened crops."""

    def __init__(self, config: PathCNNConfig, n_classes: int) -> None:
        super().__init__()
        self.config = config
        ins = [config.image_shape[2], *config.channels[:-1]]
        self.convs = nn.ModuleList()
        for layer, (cin, cout) in enumerate(zip(ins, config.channels, strict=True)):
            stride, _ = layer_stride_pool(layer, len(config.channels), config.downsample)
            conv = nn.Conv2d(cin, cout, config.kernel, stride=stride, padding=config.kernel // 2)
            nn.init.normal_(conv.weight, std=math.sqrt(2.0 / (cin * config.kernel**2)))
            nn.init.zeros_(conv.bias)
            self.convs.append(conv)
        self.readout = nn.Linear(config.feature_dim(), n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Readout inputs ``(n, F)`` of flattened crops ``x (n, H*W*C)``."""
        c = self.config
        a = as_images(x, c.image_shape, c.input_norm)
        layers = len(self.convs)
        for layer, conv in enumerate(self.convs):
            a = F.relu(conv(a))
            if layer_stride_pool(layer, layers, c.downsample)[1]:
                a = max_pool_2x2(a)
        return readout_features(a, c.readout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(x))

    def new_readout(self, n_classes: int) -> None:
        """A fresh readout for a new task (the conv layers keep what they learnt)."""
        self.readout = nn.Linear(self.readout.in_features, n_classes).to(self.readout.weight.device)

    def body_parameters(self) -> list[nn.Parameter]:
        return [p for conv in self.convs for p in conv.parameters()]


@torch.inference_mode()
def body_features(
    model: nn.Module, x: np.ndarray, device: str = "cpu", batch: int = 256
) -> torch.Tensor:
    """The frozen body's features of every row of ``x`` (eval mode, batched), on the CPU:
    head-only fine-tuning trains the readout on them (the body never changes)."""
    was = model.training
    model.eval()
    out = [
        model.features(torch.as_tensor(x[i : i + batch]).to(device)).float().cpu()
        for i in range(0, len(x), batch)
    ]
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, model.readout.in_features)


def class_map(source: Sequence[str], destination: Sequence[str]) -> np.ndarray:
    """For each destination class, the index of the source class of the same emotion
    name (case-insensitive), or -1 where the source has no such class."""
    index = {name.strip().lower(): i for i, name in enumerate(source)}
    return np.array([index.get(name.strip().lower(), -1) for name in destination], dtype=np.int64)


def zero_shot_proba(
    source_proba: np.ndarray, source: Sequence[str], destination: Sequence[str]
) -> np.ndarray:
    """A source model's class probabilities ``(n, len(source))`` as probabilities over the
    destination's classes ``(n, len(destination))``, matched by emotion name.

    The model is told the destination's label set: source classes the destination lacks
    (e.g. FER-2013's neutral for CK+48) are dropped and the rest renormalised; a
    destination class the source lacks gets probability 0, so it is never predicted and
    its faces count as wrong.
    """
    mapping = class_map(source, destination)
    have = mapping >= 0
    if not have.any():
        raise ValueError(
            f"zero-shot: the source classes {list(source)} share no emotion with the "
            f"destination's {list(destination)}"
        )
    proba = np.asarray(source_proba, dtype=np.float64)
    out = np.zeros((len(proba), len(destination)))
    out[:, have] = proba[:, mapping[have]]
    total = out.sum(1, keepdims=True)
    empty = total[:, 0] <= 0  # every shared class underflowed: uniform over them
    out[empty] = have / have.sum()
    total[empty] = 1.0
    return (out / total).astype(np.float32)
