"""A single conv path as a standalone ``nn.Module``: only its modules and the task readout.

Takes the same flattened inputs as the super-network (``(n, H*W*C)`` crops in [0, 1]),
so model files, the predictor and the protocol treat linear and conv paths alike.
``config_dict()`` + ``state_dict()`` rebuild it with ``ConvPathModel.from_config``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pathnet_fer.pathnet.config import (
    COMBINE_MODES,
    DOWNSAMPLE_MODES,
    INPUT_NORMS,
    READOUT_FEATURES,
    conv_map_sizes,
)
from pathnet_fer.pathnet.conv_ops import as_images, conv_layer, layer_stride_pool, readout_features
from pathnet_fer.pathnet.linear_path_model import copy_path_parameters, distinct_modules

if TYPE_CHECKING:
    from pathnet_fer.pathnet.supernet import PathNet

FORMAT = "pathnet-fer-conv-path-model"


class ConvPathModel(nn.Module):
    """Layer ``l`` holds the path's k_l DISTINCT modules as one ``(k_l*Cout, Cin, k, k)``
    filter bank; their ReLU maps are averaged (or summed), downsampled, and the readout
    sees the last maps pooled (avg) or flattened."""

    def __init__(
        self,
        image_shape: tuple[int, int, int] | list[int],
        channels: list[int],
        kernel: int,
        modules_per_layer: list[int],
        n_classes: int,
        combine: str = "mean",
        downsample: str = "pool",
        readout: str = "avg",
        input_norm: str = "none",
        genotype: list[list[int]] | None = None,
        task_name: str = "",
    ) -> None:
        super().__init__()
        for name, value, allowed in (
            ("combine", combine, COMBINE_MODES),
            ("downsample", downsample, DOWNSAMPLE_MODES),
            ("readout", readout, READOUT_FEATURES),
            ("input_norm", input_norm, INPUT_NORMS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if len(channels) != len(modules_per_layer) or any(k < 1 for k in modules_per_layer):
            raise ValueError(
                f"need one positive module count per layer: channels {channels}, "
                f"modules_per_layer {modules_per_layer}"
            )
        self.image_shape = tuple(int(v) for v in image_shape)
        self.channels = [int(v) for v in channels]
        self.kernel = int(kernel)
        self.modules_per_layer = list(modules_per_layer)
        self.n_classes = n_classes
        self.combine, self.downsample = combine, downsample
        self.readout_mode, self.input_norm = readout, input_norm
        self.genotype, self.task_name = genotype, task_name
        self.input_dim = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        ins = [self.image_shape[2], *self.channels[:-1]]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(k * cout, cin, self.kernel, self.kernel))
            for k, cout, cin in zip(self.modules_per_layer, self.channels, ins, strict=True)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(k * cout))
            for k, cout in zip(self.modules_per_layer, self.channels, strict=True)
        )
        self.readout = nn.Linear(self._feature_dim(), n_classes)

    def _feature_dim(self) -> int:
        if self.readout_mode == "avg":
            return self.channels[-1]
        h, w = conv_map_sizes(self.image_shape[:2], len(self.channels), self.downsample)[-1]
        return self.channels[-1] * h * w

    @classmethod
    def from_pathnet(
        cls,
        net: PathNet,
        genotype: torch.Tensor,
        readout_weight: torch.Tensor,
        readout_bias: torch.Tensor,
        run: int = 0,
        task_name: str = "",
    ) -> ConvPathModel:
        c = net.config
        distinct = distinct_modules(genotype)
        model = cls(
            c.image_shape,
            list(c.channels),
            c.kernel,
            [len(d) for d in distinct],
            int(readout_weight.shape[0]),
            c.combine,
            c.downsample,
            c.readout_features,
            c.input_norm,
            genotype=genotype.tolist(),
            task_name=task_name,
        )
        copy_path_parameters(model, net, distinct, readout_weight, readout_bias, run)
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, C)`` for flattened crops ``x (n, H*W*C)``."""
        a = as_images(x, self.image_shape, self.input_norm)
        layers = len(self.channels)
        for layer, (w, b, k) in enumerate(
            zip(self.weights, self.biases, self.modules_per_layer, strict=True)
        ):
            value = 1.0 / k if self.combine == "mean" else 1.0
            slot = torch.full((k,), value, device=x.device, dtype=x.dtype)
            stride, pool = layer_stride_pool(layer, layers, self.downsample)
            a = conv_layer(a, w, b, slot, stride, pool)
        return self.readout(readout_features(a, self.readout_mode))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).softmax(-1)

    def config_dict(self) -> dict[str, Any]:
        """Everything (besides the state_dict) needed to rebuild the module."""
        return {
            "format": FORMAT,
            "image_shape": list(self.image_shape),
            "channels": list(self.channels),
            "kernel": self.kernel,
            "modules_per_layer": list(self.modules_per_layer),
            "n_classes": self.n_classes,
            "combine": self.combine,
            "downsample": self.downsample,
            "readout": self.readout_mode,
            "input_norm": self.input_norm,
            "genotype": self.genotype,
            "task_name": self.task_name,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None
    ) -> ConvPathModel:
        if config.get("format") != FORMAT:
            raise ValueError(f"not a ConvPathModel config (format={config.get('format')!r})")
        model = cls(
            config["image_shape"],
            config["channels"],
            config["kernel"],
            config["modules_per_layer"],
            config["n_classes"],
            config["combine"],
            config["downsample"],
            config["readout"],
            config["input_norm"],
            genotype=config.get("genotype"),
            task_name=config.get("task_name", ""),
        )
        if state_dict is not None:
            model.load_state_dict(state_dict)
        return model
