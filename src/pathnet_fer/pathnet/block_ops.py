"""Block modules' arithmetic, shared by evaluation, training and export.

A block module of layer ``l`` (``PathNetConfig.module == "block"``) is ``block_depth``
convolutions with ``C = channels[l]`` outputs, each followed by batch normalisation
(BN) and ReLU; with ``block_residual`` the block's input (or its 1x1 projection + BN
when the channel count or the map size changes) is added before the last ReLU. A layer
runs its k active modules one after the other on its input (in channels-last memory)
and averages (or sums) their outputs.

Storage (``BlockLayout``): module ``m`` of layer ``l`` is ``weights[l][r, m]``, a flat
vector of ``layout.size`` trained values, and ``biases[l][r, m]``, a flat vector of
``layout.stats_size`` BN running statistics (never trained by gradient). The flat
vector's parts, in order (``layout.parts``), per convolution j = 0..depth-1 with
``cin_j`` input channels (the layer's input channels for j = 0, else C):

- ``full``: ``conv{j}`` ``(C, cin_j, k, k)``; ``separable``: ``depthwise{j}``
  ``(cin_j, 1, k, k)`` then ``pointwise{j}`` ``(C, cin_j, 1, 1)``;
- ``gamma{j}`` ``(C,)``, ``beta{j}`` ``(C,)``: BN scale and shift;

then, for a residual block with a projection, ``shortcut`` ``(C, Cin, 1, 1)``,
``shortcut_gamma``, ``shortcut_beta``. Statistics: ``mean{j}``, ``var{j}`` (C each) per
convolution, then ``shortcut_mean``, ``shortcut_var``. Every part is stored flattened
in ``nn.Conv2d`` / ``nn.BatchNorm2d`` order; ``split`` gives the parts of k modules
stacked along the first dimension (``(k*C, ...)``), ``module_slice`` one module's rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pathnet_fer.pathnet.conv_ops import layer_stride_pool

BN_EPS = 1e-5

Norm = Callable[[torch.Tensor, int, dict, dict, int], torch.Tensor]
"""``norm(z, unit, parts, stats, module)``: batch normalisation of BN unit ``unit``
(0..depth-1, or ``depth`` for the shortcut) of the layer's ``module``-th module, whose
``parts`` and ``stats`` are given."""


@dataclass(frozen=True)
class BlockLayout:
    """Where each part of one block module lives in its flat parameter and statistics
    vectors, for one layer."""

    cin: int
    channels: int
    kernel: int
    depth: int
    separable: bool
    residual: bool
    stride: int

    @classmethod
    def for_layer(cls, config, layer: int) -> BlockLayout:

        stride, _ = layer_stride_pool(layer, config.layers, config.downsample)
        return cls(
            cin=config.layer_input_dims()[layer],
            channels=config.channels[layer],
            kernel=config.kernel,
            depth=config.block_depth,
            separable=config.block_conv == "separable",
            residual=config.block_residual,
            stride=stride,
        )

    @property
    def projection(self) -> bool:
        """A residual block whose shortcut needs a 1x1 convolution + BN."""
        return self.residual and (self.cin != self.channels or self.stride != 1)

    @property
    def bn_units(self) -> int:
        return self.depth + (1 if self.projection else 0)

    @property
    def parts(self) -> list[tuple[str, tuple[int, ...], int | None]]:
        """``(name, shape, fan_in)`` of the trained parts in storage order; ``fan_in``
        is None for BN scale/shift (not convolution kernels: no weight decay)."""
        c, k = self.channels, self.kernel
        out: list[tuple[str, tuple[int, ...], int | None]] = []
        for j in range(self.depth):
            cin = self.cin if j == 0 else c
            if self.separable:
                out.append((f"depthwise{j}", (cin, 1, k, k), k * k))
                out.append((f"pointwise{j}", (c, cin, 1, 1), cin))
            else:
                out.append((f"conv{j}", (c, cin, k, k), cin * k * k))
            out.append((f"gamma{j}", (c,), None))
            out.append((f"beta{j}", (c,), None))
        if self.projection:
            out.append(("shortcut", (c, self.cin, 1, 1), self.cin))
            out.append(("shortcut_gamma", (c,), None))
            out.append(("shortcut_beta", (c,), None))
        return out

    @property
    def stats_parts(self) -> list[tuple[str, tuple[int, ...]]]:
        names = [f"{kind}{j}" for j in range(self.depth) for kind in ("mean", "var")]
        if self.projection:
            names += ["shortcut_mean", "shortcut_var"]
        return [(name, (self.channels,)) for name in names]

    @property
    def size(self) -> int:
        return sum(math.prod(shape) for _, shape, _ in self.parts)

    @property
    def stats_size(self) -> int:
        return 2 * self.bn_units * self.channels

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(k, size)`` -> ``{name: (k * shape[0], *shape[1:])}`` contiguous tensors
        (modules stacked along the first dimension; a view of ``flat`` where possible)."""
        return _split(flat, [(n, s) for n, s, _ in self.parts])

    def split_stats(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(k, stats_size)`` -> ``{name: (k * C,)}`` contiguous tensors (views where
        possible)."""
        return _split(flat, self.stats_parts)

    def join(self, parts: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        """Inverse of ``split``: ``(k, size)``."""
        return torch.cat([parts[n].reshape(k, -1) for n, _, _ in self.parts], 1)

    def join_stats(self, stats: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        return torch.cat([stats[n].reshape(k, -1) for n, _ in self.stats_parts], 1)

    def initial_values(
        self, count: tuple[int, ...], generator: torch.Generator, init: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh modules ``(*count, size)`` and statistics ``(*count, stats_size)``:
        kernels He-normal (``he-combine``: variance 2/fan_in; BN after every convolution
        makes the combine's scale irrelevant) or uniform +-1/sqrt(fan_in)
        (``torch-linear``); BN scale 1, shift 0; running mean 0, variance 1. One draw of
        the whole tensor from ``generator`` (fixed consumption)."""
        if init == "torch-linear":
            draw = torch.rand((*count, self.size), generator=generator) * 2 - 1
        else:
            draw = torch.randn((*count, self.size), generator=generator)
        pieces, start = [], 0
        for name, shape, fan_in in self.parts:
            n = math.prod(shape)
            chunk = draw[..., start : start + n]
            if fan_in is None:
                chunk = torch.full_like(chunk, 1.0 if "gamma" in name else 0.0)
            elif init == "torch-linear":
                chunk = chunk / math.sqrt(fan_in)
            else:
                chunk = chunk * math.sqrt(2.0 / fan_in)
            pieces.append(chunk)
            start += n
        stats = [
            torch.full((*count, shape[0]), 1.0 if "var" in name else 0.0)
            for name, shape in self.stats_parts
        ]
        return torch.cat(pieces, -1), torch.cat(stats, -1)

    def decayed(self, name: str) -> bool:
        """Weight decay applies to convolution kernels, not to BN scale and shift."""
        return not ("gamma" in name or "beta" in name)

    def forward_flops(self, height: int, width: int) -> int:
        """2 x multiply-adds of one module's convolutions on one sample, output maps
        ``height`` x ``width``."""
        return sum(
            2 * height * width * math.prod(shape)
            for name, shape, fan_in in self.parts
            if fan_in is not None
        )


def _split(flat: torch.Tensor, parts: list[tuple[str, tuple[int, ...]]]) -> dict:
    k = flat.shape[0]
    out, start = {}, 0
    for name, shape in parts:
        n = math.prod(shape)
        out[name] = flat[:, start : start + n].reshape(k * shape[0], *shape[1:]).contiguous()
        start += n
    return out


def eval_norm(z: torch.Tensor, unit: int, parts: dict, stats: dict, module: int) -> torch.Tensor:
    """BN with the stored running statistics (evaluation, export, frozen modules)."""
    gamma, beta, mean, var = _bn_tensors(unit, parts, stats)
    return F.batch_norm(z, mean, var, gamma, beta, False, 0.0, BN_EPS)


def _bn_tensors(unit: int, parts: dict, stats: dict):
    if f"gamma{unit}" in parts:
        return (
            parts[f"gamma{unit}"],
            parts[f"beta{unit}"],
            stats[f"mean{unit}"],
            stats[f"var{unit}"],
        )
    return (
        parts["shortcut_gamma"],
        parts["shortcut_beta"],
        stats["shortcut_mean"],
        stats["shortcut_var"],
    )


def training_norm(frozen_modules: int, momentum: float) -> Norm:
    """BN for a layer whose first ``frozen_modules`` modules are frozen: those use their
    stored statistics (never updated); the others normalise with the minibatch's
    statistics and move their running statistics by ``momentum`` (in place)."""

    def norm(z: torch.Tensor, unit: int, parts: dict, stats: dict, module: int) -> torch.Tensor:
        gamma, beta, mean, var = _bn_tensors(unit, parts, stats)
        if module < frozen_modules:
            return F.batch_norm(z, mean, var, gamma, beta, False, 0.0, BN_EPS)
        return F.batch_norm(z, mean, var, gamma, beta, True, momentum, BN_EPS)

    return norm


def module_slice(tensors: dict[str, torch.Tensor], k: int, i: int) -> dict[str, torch.Tensor]:
    """Module ``i``'s rows of parts (or statistics) stacked for k modules: views."""
    out = {}
    for name, t in tensors.items():
        rows = t.shape[0] // k
        out[name] = t.narrow(0, i * rows, rows)
    return out


def channels_last(a: torch.Tensor) -> torch.Tensor:
    """``a (B, C, H, W)`` in channels-last memory (a no-op when it already is). The
    convolutions, batch norms and pooling of these small maps run faster so on the CPU
    (measured: ~20 % per training step against NCHW), and a grey image's
    ``(B, 1, H, W)`` view is otherwise read as NCHW."""
    if a.stride(1) == 1:
        return a
    return torch.empty_like(a, memory_format=torch.channels_last).copy_(a)


def block_layer(
    a: torch.Tensor,
    parts: dict[str, torch.Tensor],
    stats: dict[str, torch.Tensor],
    layout: BlockLayout,
    k: int,
    combine: str,
    pool: bool,
    norm: Norm = eval_norm,
) -> torch.Tensor:
    """One layer of one path: its k distinct modules (stacked ``parts`` and ``stats``)
    on ``a (B, Cin, H, W)``, one module after the other, their outputs combined
    (``mean`` | ``sum``) and optionally 2x2 max-pooled -> ``(B, C, H', W')``, in
    channels-last memory. (Running the k modules as one convolution and grouped ones
    in NCHW was measured ~20 % slower per training step on the CPU.)"""
    a = channels_last(a)
    pad = layout.kernel // 2
    total = None
    for i in range(k):
        p, s = module_slice(parts, k, i), module_slice(stats, k, i)
        h = a
        z = a
        for j in range(layout.depth):
            stride = layout.stride if j == 0 else 1
            if layout.separable:
                d = F.conv2d(h, p[f"depthwise{j}"], None, stride, pad, groups=h.shape[1])
                z = F.conv2d(d, p[f"pointwise{j}"])
            else:
                z = F.conv2d(h, p[f"conv{j}"], None, stride, pad)
            z = norm(z, j, p, s, i)
            if j < layout.depth - 1:
                h = torch.relu(z)
        if layout.projection:
            shortcut = F.conv2d(a, p["shortcut"], None, layout.stride)
            z = z + norm(shortcut, layout.depth, p, s, i)
        elif layout.residual:
            z = z + a
        out = torch.relu(z)
        total = out if total is None else total + out
    if combine == "mean" and k > 1:
        total = total / k
    return F.max_pool2d(total, 2) if pool else total
