"""A single block path as a standalone ``nn.Module``: only its modules and the task readout.

Takes the same flattened inputs as the super-network (``(n, H*W*C)`` crops in [0, 1]).
Layer ``l`` holds the path's k_l DISTINCT modules (sorted by index) as a parameter
``weights.l`` of shape ``(k_l, P_l)`` and their batch-norm running statistics as a
buffer ``stats_l`` of shape ``(k_l, S_l)``, in the super-network's layout
(``block_ops.BlockLayout``). Batch normalisation ALWAYS uses the stored statistics (the
model is for inference; ``train()`` changes nothing), computed by the same function as
``PathNet.forward_paths``, so both give the same logits. ``config_dict()`` +
``state_dict()`` rebuild it with ``BlockPathModel.from_config``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pathnet_fer.pathnet.block_ops import BN_EPS, BlockLayout, block_layer
from pathnet_fer.pathnet.config import (
    BLOCK_CONVS,
    COMBINE_MODES,
    DOWNSAMPLE_MODES,
    INPUT_NORMS,
    READOUT_FEATURES,
    conv_map_sizes,
)
from pathnet_fer.pathnet.conv_ops import as_images, layer_stride_pool, readout_features
from pathnet_fer.pathnet.linear_path_model import distinct_modules

if TYPE_CHECKING:
    from pathnet_fer.pathnet.supernet import PathNet

FORMAT = "pathnet-fer-block-path-model"


class BlockPathModel(nn.Module):
    """A block path: per layer its distinct modules' blocks, combined (mean | sum),
    downsampled; the readout sees the last maps flattened or averaged."""

    def __init__(
        self,
        image_shape: tuple[int, int, int] | list[int],
        channels: list[int],
        kernel: int,
        modules_per_layer: list[int],
        n_classes: int,
        combine: str = "mean",
        downsample: str = "pool",
        readout: str = "flatten",
        input_norm: str = "image",
        block_depth: int = 2,
        block_conv: str = "full",
        block_residual: bool = False,
        bn_eps: float = BN_EPS,
        genotype: list[list[int]] | None = None,
        task_name: str = "",
    ) -> None:
        super().__init__()
        for name, value, allowed in (
            ("combine", combine, COMBINE_MODES),
            ("downsample", downsample, DOWNSAMPLE_MODES),
            ("readout", readout, READOUT_FEATURES),
            ("input_norm", input_norm, INPUT_NORMS),
            ("block_conv", block_conv, BLOCK_CONVS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if len(channels) != len(modules_per_layer) or any(k < 1 for k in modules_per_layer):
            raise ValueError(
                f"need one positive module count per layer: channels {channels}, "
                f"modules_per_layer {modules_per_layer}"
            )
        if float(bn_eps) != BN_EPS:
            raise ValueError(f"bn_eps {bn_eps} is not this version's {BN_EPS}")
        self.image_shape = tuple(int(v) for v in image_shape)
        self.channels = [int(v) for v in channels]
        self.kernel = int(kernel)
        self.modules_per_layer = [int(k) for k in modules_per_layer]
        self.n_classes = int(n_classes)
        self.combine, self.downsample = combine, downsample
        self.readout_mode, self.input_norm = readout, input_norm
        self.block_depth, self.block_conv = int(block_depth), block_conv
        self.block_residual = bool(block_residual)
        self.genotype, self.task_name = genotype, task_name
        self.input_dim = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        ins = [self.image_shape[2], *self.channels[:-1]]
        layers = len(self.channels)
        self.layouts = [
            BlockLayout(
                cin=cin,
                channels=cout,
                kernel=self.kernel,
                depth=self.block_depth,
                separable=block_conv == "separable",
                residual=self.block_residual,
                stride=layer_stride_pool(layer, layers, downsample)[0],
            )
            for layer, (cin, cout) in enumerate(zip(ins, self.channels, strict=True))
        ]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(k, layout.size))
            for k, layout in zip(self.modules_per_layer, self.layouts, strict=True)
        )
        for layer, (k, layout) in enumerate(zip(self.modules_per_layer, self.layouts, strict=True)):
            self.register_buffer(f"stats_{layer}", torch.zeros(k, layout.stats_size))
        self.readout = nn.Linear(self._feature_dim(), self.n_classes)

    def _feature_dim(self) -> int:
        if self.readout_mode == "avg":
            return self.channels[-1]
        h, w = conv_map_sizes(self.image_shape[:2], len(self.channels), self.downsample)[-1]
        return self.channels[-1] * h * w

    def statistics(self, layer: int) -> torch.Tensor:
        """Layer ``layer``'s batch-norm running statistics ``(k, S)``."""
        return getattr(self, f"stats_{layer}")

    @classmethod
    def from_pathnet(
        cls,
        net: PathNet,
        genotype: torch.Tensor,
        readout_weight: torch.Tensor,
        readout_bias: torch.Tensor,
        run: int = 0,
        task_name: str = "",
    ) -> BlockPathModel:
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
            c.block_depth,
            c.block_conv,
            c.block_residual,
            genotype=genotype.tolist(),
            task_name=task_name,
        )
        with torch.no_grad():
            for layer, idx in enumerate(distinct):
                model.weights[layer].copy_(net.weights[layer][run][idx].cpu())
                model.statistics(layer).copy_(net.biases[layer][run][idx].cpu())
            model.readout.weight.copy_(readout_weight.cpu())
            model.readout.bias.copy_(readout_bias.cpu())
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, C)`` for flattened crops ``x (n, H*W*C)``."""
        a = as_images(x, self.image_shape, self.input_norm)
        layers = len(self.channels)
        for layer, (layout, k) in enumerate(zip(self.layouts, self.modules_per_layer, strict=True)):
            parts = layout.split(self.weights[layer])
            stats = layout.split_stats(self.statistics(layer))
            _, pool = layer_stride_pool(layer, layers, self.downsample)
            a = block_layer(a, parts, stats, layout, k, self.combine, pool)
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
            "block_depth": self.block_depth,
            "block_conv": self.block_conv,
            "block_residual": self.block_residual,
            "bn_eps": BN_EPS,
            "genotype": self.genotype,
            "task_name": self.task_name,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None
    ) -> BlockPathModel:
        if config.get("format") != FORMAT:
            raise ValueError(f"not a BlockPathModel config (format={config.get('format')!r})")
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
            config["block_depth"],
            config["block_conv"],
            config["block_residual"],
            config.get("bn_eps", BN_EPS),
            genotype=config.get("genotype"),
            task_name=config.get("task_name", ""),
        )
        if state_dict is not None:
            model.load_state_dict(state_dict)
        return model
