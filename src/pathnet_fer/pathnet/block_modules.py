"""Block modules: a module is ``block_depth`` convolutions, each + batch norm + ReLU.

``weights[l]`` is ``(R, M, P_l)``: each module's trained values as one flat vector,
``biases[l]`` is ``(R, M, S_l)``: its batch-norm running statistics (the layout of both:
``block_ops.BlockLayout``). Everything that handles modules generically (fix and
re-initialise, adopt_fixed, checkpoints, ``state()``, the source store) therefore moves a
module's statistics together with its weights, and a frozen module's statistics are
frozen with it. Training: ``block_sgd.train_block_paths`` (autograd per path).
"""

from __future__ import annotations

import torch

from pathnet_fer.pathnet.block_ops import BlockLayout, block_layer
from pathnet_fer.pathnet.block_path_model import BlockPathModel
from pathnet_fer.pathnet.block_sgd import train_block_paths
from pathnet_fer.pathnet.conv_ops import (
    as_images,
    layer_output_maps,
    layer_stride_pool,
    readout_features,
)
from pathnet_fer.pathnet.linear_path_model import distinct_modules
from pathnet_fer.pathnet.module_type import ModuleType

EVAL_BYTES = 64 * 1024 * 1024  # activation memory per evaluation chunk


class BlockModules(ModuleType):
    name = "block"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.layouts = [BlockLayout.for_layer(config, layer) for layer in range(config.layers)]

    def weight_shape(self, layer: int) -> tuple[int, ...]:
        return (self.layouts[layer].size,)

    def bias_shape(self, layer: int) -> tuple[int, ...]:
        return (self.layouts[layer].stats_size,)

    def fan_in(self, layer: int) -> int:
        c = self.config
        return c.layer_input_dims()[layer] * c.kernel * c.kernel

    def initial_values(self, layer: int, runs: int, generator: torch.Generator):
        """Fresh modules and statistics for every module of ``layer`` (see
        ``BlockLayout.initial_values``)."""
        return self.layouts[layer].initial_values(
            (runs, self.config.modules), generator, self.config.init
        )

    def output_maps(self) -> list[tuple[int, int]]:
        """(h, w) of each layer's block output (before pooling)."""
        return layer_output_maps(self.config)

    def flops_per_sample(self, paths: int = 1) -> int:
        """Forward FLOPs (2 x multiply-adds) of the convolutions of one path, N modules."""
        c = self.config
        total = sum(
            layout.forward_flops(h, w) * c.max_active
            for layout, (h, w) in zip(self.layouts, self.output_maps(), strict=True)
        )
        return total * paths

    def _row_bytes(self) -> int:
        c = self.config
        return (
            4
            * 3
            * max(
                c.max_active * c.channels[layer] * h * w
                for layer, (h, w) in enumerate(self.output_maps())
            )
        )

    def path_parts(self, net, layer: int, run: int, modules: list[int]):
        """A path's k distinct modules of ``layer`` as ``(parts, stats)`` dicts."""
        layout = self.layouts[layer]
        idx = torch.tensor(modules, device=net.device)
        return (
            layout.split(net.weights[layer][run][idx]),
            layout.split_stats(net.biases[layer][run][idx]),
        )

    @torch.no_grad()
    def forward_paths(self, net, x, paths, readout_weight, readout_bias, run):
        """Each path runs its DISTINCT modules (sorted, as the exported model holds
        them), every batch norm with its stored statistics."""
        c = self.config
        n_paths = paths.shape[0]
        chunk = max(1, EVAL_BYTES // self._row_bytes())
        out = torch.empty(n_paths, x.shape[0], readout_weight.shape[0], device=net.device)
        for p in range(n_paths):
            distinct = distinct_modules(paths[p].cpu())
            layers = [
                self.path_parts(net, layer, run, distinct[layer]) for layer in range(c.layers)
            ]
            for start in range(0, x.shape[0], chunk):
                a = as_images(x[start : start + chunk], c.image_shape, c.input_norm)
                for layer, (parts, stats) in enumerate(layers):
                    _, pool = layer_stride_pool(layer, c.layers, c.downsample)
                    k = len(distinct[layer])
                    a = block_layer(a, parts, stats, self.layouts[layer], k, c.combine, pool)
                f = readout_features(a, c.readout_features)
                torch.addmm(readout_bias, f, readout_weight.t(), out=out[p, start : start + chunk])
        return out

    train_paths = staticmethod(train_block_paths)

    def path_model(self, net, genotype, readout_weight, readout_bias, run, task_name):

        return BlockPathModel.from_pathnet(
            net, genotype, readout_weight, readout_bias, run=run, task_name=task_name
        )
