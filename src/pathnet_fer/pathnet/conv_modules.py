"""Convolutional modules: a module is a k x k convolution with ``channels[l]`` outputs + ReLU.

``weights[l]`` is ``(R, M, Cout_l, Cin_l, k, k)`` (the ``nn.Conv2d`` layout, so gathering
a path's N modules gives one contiguous ``(N*Cout, Cin, k, k)`` filter bank: a layer's
active modules run as ONE convolution), ``biases[l]`` is ``(R, M, Cout_l)``. A layer's
input is the previous layer's combined, downsampled map; the first layer's input is the
crop as an image (inputs stay flattened rows everywhere else; ``as_images`` views them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from pathnet_fer.pathnet.conv_ops import (
    as_images,
    conv_layer,
    layer_output_maps,
    layer_stride_pool,
    readout_features,
)
from pathnet_fer.pathnet.conv_path_model import ConvPathModel
from pathnet_fer.pathnet.conv_sgd import train_conv_paths
from pathnet_fer.pathnet.genotype import slot_weights
from pathnet_fer.pathnet.module_type import ModuleType

if TYPE_CHECKING:
    pass

EVAL_BYTES = 64 * 1024 * 1024  # activation memory per evaluation chunk


class ConvModules(ModuleType):
    name = "conv"

    def weight_shape(self, layer: int) -> tuple[int, ...]:
        c = self.config
        return (c.channels[layer], c.layer_input_dims()[layer], c.kernel, c.kernel)

    def bias_shape(self, layer: int) -> tuple[int, ...]:
        return (self.config.channels[layer],)

    def fan_in(self, layer: int) -> int:
        c = self.config
        return c.layer_input_dims()[layer] * c.kernel * c.kernel

    def output_maps(self) -> list[tuple[int, int]]:
        """(h, w) of each layer's convolution output (before pooling)."""
        return layer_output_maps(self.config)

    def flops_per_sample(self, paths: int = 1) -> int:
        """Forward FLOPs (2 x multiply-adds) of the convolutions of one path, N modules."""
        c = self.config
        total = 0
        for layer, (h, w) in enumerate(self.output_maps()):
            total += 2 * h * w * c.max_active * self.fan_in(layer) * c.channels[layer]
        return total * paths

    def _row_bytes(self) -> int:
        c = self.config
        return 4 * max(
            c.modules * c.channels[layer] * h * w for layer, (h, w) in enumerate(self.output_maps())
        )

    @torch.no_grad()
    def forward_paths(self, net, x, paths, readout_weight, readout_bias, run):
        """Each path runs on every row chunk; when the paths together touch most of the
        first layer, its M modules are convolved once per chunk and shared."""
        c = self.config
        paths = paths.to(net.device)
        n_paths = paths.shape[0]
        cw = slot_weights(paths, c.combine)  # (P, L, N)
        chunk = max(1, EVAL_BYTES // self._row_bytes())
        share_first = n_paths * c.max_active >= c.modules
        weights = [
            None if layer == 0 and share_first else self._gather(net, layer, run, paths[:, layer])
            for layer in range(c.layers)
        ]
        out = torch.empty(n_paths, x.shape[0], readout_weight.shape[0], device=net.device)
        stride0, pool0 = layer_stride_pool(0, c.layers, c.downsample)
        for start in range(0, x.shape[0], chunk):
            img = as_images(x[start : start + chunk], c.image_shape, c.input_norm)
            first = None
            if share_first:
                all_w = net.weights[0][run].reshape(-1, *net.weights[0].shape[3:])
                z_all = torch.nn.functional.conv2d(
                    img,
                    all_w,
                    net.biases[0][run].reshape(-1),
                    stride=stride0,
                    padding=c.kernel // 2,
                ).relu_()
                first = z_all.view(img.shape[0], c.modules, c.channels[0], *z_all.shape[2:])
            for p in range(n_paths):
                if first is not None:
                    z = first[:, paths[p, 0]]  # (n, N, Cout, h, w)
                    a = torch.matmul(cw[p, 0].view(1, 1, -1), z.flatten(2)).view(
                        z.shape[0], *z.shape[2:]
                    )
                    a = torch.nn.functional.max_pool2d(a, 2) if pool0 else a
                else:
                    a = conv_layer(img, *weights[0][p], cw[p, 0], stride0, pool0)
                for layer in range(1, c.layers):
                    stride, pool = layer_stride_pool(layer, c.layers, c.downsample)
                    a = conv_layer(a, *weights[layer][p], cw[p, layer], stride, pool)
                f = readout_features(a, c.readout_features)
                torch.addmm(readout_bias, f, readout_weight.t(), out=out[p, start : start + chunk])
        return out

    def _gather(self, net, layer: int, run: int, idx: torch.Tensor):
        """Per path: its N modules' filters ``(N*Cout, Cin, k, k)`` and biases."""
        w = net.weights[layer][run][idx]  # (P, N, Cout, Cin, k, k)
        b = net.biases[layer][run][idx]  # (P, N, Cout)
        p = idx.shape[0]
        return list(
            zip(w.reshape(p, -1, *w.shape[3:]).unbind(0), b.reshape(p, -1).unbind(0), strict=True)
        )

    train_paths = staticmethod(train_conv_paths)

    def path_model(self, net, genotype, readout_weight, readout_bias, run, task_name):

        return ConvPathModel.from_pathnet(
            net, genotype, readout_weight, readout_bias, run=run, task_name=task_name
        )
