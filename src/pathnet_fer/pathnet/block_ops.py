"""Block modules' arithmetic, shared by evaluation, training and export.

A block module of layer ``l`` (``PathNetConfig.module == "block"``) is ``block_depth``
convolutions with ``C = channels[l]`` outputs, each followed by batch normalisation
(BN) and ReLU; with ``block_residual`` the block's input (or its 1x1 projection + BN
when the channel count or the map size changes) is added before the last ReLU. A layer
runs its k active modules side by side on its input, as one wider block (in
channels-last memory), and averages (or sums) their outputs.

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
stacked along the first dimension (``(k*C, ...)``), ``module_rows`` a run of modules' rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pathnet_fer.pathnet.conv_ops import layer_stride_pool

BN_EPS = 1e-5


@dataclass(frozen=True)
class Norms:
    """How a layer's batch normalisations run: its first ``frozen`` modules (fixed by an
    earlier task; every module in evaluation) with their stored statistics, never
    written; the others with the minibatch's statistics, moving their running ones by
    ``momentum`` in place. Modules are stored frozen first, so each kind is one run of
    consecutive modules and normalises in one call."""

    frozen: int | None = None  # None: every module (evaluation, export)
    momentum: float = 0.0

    def groups(self, k: int) -> list[tuple[int, int, bool]]:
        """``(first module, count, training)`` of the layer's runs of modules."""
        frozen = k if self.frozen is None else min(self.frozen, k)
        out = [(0, frozen, False), (frozen, k - frozen, True)]
        return [g for g in out if g[1]]


eval_norm = Norms()
"""Every batch norm with its stored statistics (evaluation, export)."""


def training_norm(frozen_modules: int, momentum: float) -> Norms:
    """BN for a layer whose first ``frozen_modules`` modules are frozen: those use their
    stored statistics (never updated); the others normalise with the minibatch's
    statistics and move their running statistics by ``momentum`` (in place)."""
    return Norms(frozen=frozen_modules, momentum=momentum)


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


def _bn(z: torch.Tensor, unit: int, parts: dict, stats: dict, training: bool, momentum: float):
    gamma, beta, mean, var = _bn_tensors(unit, parts, stats)
    return F.batch_norm(z, mean, var, gamma, beta, training, momentum, BN_EPS)


def module_rows(
    tensors: dict[str, torch.Tensor], k: int, first: int, count: int
) -> dict[str, torch.Tensor]:
    """Modules ``first .. first+count-1`` of parts (or statistics) stacked for k modules:
    views (in-place updates of running statistics reach the stored tensor)."""
    out = {}
    for name, t in tensors.items():
        rows = t.shape[0] // k
        out[name] = t.narrow(0, first * rows, count * rows)
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
    norm: Norms = eval_norm,
    nchw: bool = False,
) -> torch.Tensor:
    """One layer of one path: its k distinct modules (stacked ``parts`` and ``stats``)
    on ``a (B, Cin, H, W)``, their outputs combined (``mean`` | ``sum``) and optionally
    2x2 max-pooled -> ``(B, C, H', W')``, in channels-last memory (``nchw``: in NCHW
    memory, see ``first_layer_nchw``).

    The modules of a run of the same batch-norm kind (``norm.groups``) run side by side
    as ONE wider block: their first convolutions read the same input, so they are one
    convolution with ``count * C`` outputs, the later ones a grouped convolution
    (``groups = count``), each batch norm one call over ``count * C`` channels (batch
    norm is per channel, so this is exactly the modules' own arithmetic). Measured on
    this project's 2-core CPU: 26 % less time per generation than the modules one
    after the other (``benchmarks/bench_pathnet_conv.py --module block``,
    docs/pathnet.md)."""
    a = a.contiguous() if nchw else channels_last(a)
    total = None
    for first, count, training in norm.groups(k):
        p = module_rows(parts, k, first, count)
        s = module_rows(stats, k, first, count)
        out = _wide_block(a, p, s, layout, count, training, norm.momentum)
        out = _sum_modules(out, count, layout.channels)
        total = out if total is None else total + out
    if combine == "mean" and k > 1:
        total = total / k
    return F.max_pool2d(total, 2) if pool else total


def first_layer_nchw(precision: str) -> bool:
    """Whether a training step runs its first layer in NCHW memory: in bfloat16, yes.

    The first layer holds the widest maps (``count * C`` channels at the image's size,
    from a one-channel grey image). In bfloat16 on the CPU its batch norms run about
    3x faster on NCHW maps than on channels-last ones, more than its convolutions lose;
    in float32 channels-last is faster throughout, and every layer in NCHW is slower
    than the first alone. Measured on this project's 2-core CPU (AVX-512 with bf16 and
    AMX): 19 % less time per bf16 generation of the bench's schedule, 10 % less for the
    shipped recipe's source (docs/pathnet.md, "The first layer in NCHW under
    bfloat16"). The arithmetic is the same up to the kernels' rounding
    (tests/test_pathnet_block.py)."""
    return precision == "bf16"


def _wide_block(
    a: torch.Tensor,
    p: dict[str, torch.Tensor],
    s: dict[str, torch.Tensor],
    layout: BlockLayout,
    count: int,
    training: bool,
    momentum: float,
) -> torch.Tensor:
    """``count`` modules' blocks on the same input ``a (B, Cin, H, W)`` ->
    ``(B, count * C, H', W')``, module-major channels, after their last ReLU."""
    pad = layout.kernel // 2
    h = a
    z = a
    for j in range(layout.depth):
        stride = layout.stride if j == 0 else 1
        if layout.separable:
            # Depthwise: module i's filter of channel c is row i * cin + c, so the first
            # convolution reads the input repeated once per module.
            x = h.repeat(1, count, 1, 1) if j == 0 and count > 1 else h
            d = F.conv2d(x, p[f"depthwise{j}"], None, stride, pad, groups=x.shape[1])
            z = F.conv2d(d, p[f"pointwise{j}"], None, 1, 0, 1, count)
        else:
            z = F.conv2d(h, p[f"conv{j}"], None, stride, pad, 1, 1 if j == 0 else count)
        z = _bn(z, j, p, s, training, momentum)
        if j < layout.depth - 1:
            h = torch.relu(z)
    if layout.projection:
        shortcut = F.conv2d(a, p["shortcut"], None, layout.stride)
        z = z + _bn(shortcut, layout.depth, p, s, training, momentum)
    elif layout.residual:
        z = z + (a.repeat(1, count, 1, 1) if count > 1 else a)
    return torch.relu(z)


def _sum_modules(out: torch.Tensor, count: int, channels: int) -> torch.Tensor:
    """``(B, count * C, H, W)`` -> the sum over the modules ``(B, C, H, W)``."""
    if count == 1:
        return out
    b, _, h, w = out.shape
    if out.is_contiguous(memory_format=torch.channels_last):
        summed = out.permute(0, 2, 3, 1).reshape(b, h, w, count, channels).sum(3)
        return summed.permute(0, 3, 1, 2)
    return out.reshape(b, count, channels, h, w).sum(1)
