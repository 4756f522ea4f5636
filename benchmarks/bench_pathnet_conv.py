"""Benchmark: conv PathNet evolution at the paper's schedule vs a straightforward reference.

One generation = 2 paths x 50 SGD steps on minibatches of 16 (lr 0.02); conv modules
(3x3, channels [8, 16, 32], L=3, M=20, N=5, 2x2 max-pool between layers, flattened
readout) on 48x48 grey images, 6 classes. Random data (timing only).

- ours: ``pathnet_fer.evolution.evolve`` with ``module: conv`` (stacked module tensors,
  one convolution per layer and path for its N modules, hand-written backward),
  ms per generation (median after warm-up), for 1 run and for batches of runs;
- reference: one ``nn.Conv2d`` per module, a Python loop over a path's active modules,
  the two paths one after the other, a fresh ``torch.optim.SGD`` per path, autograd;
- GFLOP/s achieved (useful FLOPs / time) beside the machine's dense-convolution rate
  measured in this process (one large ``F.conv2d``, in NCHW and channels-last memory),
  and the floor: the schedule's useful FLOPs at that dense rate.

Useful FLOPs: forward convolutions of 2 paths x N modules, their weight gradients, and
their input gradients above the first layer (the input needs none).

``--module block`` times block modules instead (``pathnet.module: block``: per module
``--block-depth`` convolutions, each + batch norm + ReLU, ``--block-conv full|separable``,
``--block-residual``), against a reference of per-module ``nn.Conv2d`` +
``nn.BatchNorm2d`` blocks (autograd, a fresh ``torch.optim.SGD`` per path).

Two floors, both measured in this process: the useful FLOPs at the dense rate of one
large ``F.conv2d`` (what the machine can do at its best shape), and the schedule's own
convolutions alone (``--module``'s forward and backward convolution kernels at the
exact shapes of a generation, 2 paths x 50 steps, timed one shape at a time, each in
the faster of NCHW and channels-last memory): what any exact step-by-step SGD with these
kernels must spend; the rest of ours is batch norm,
ReLU, the combine, pooling, autograd and Python.

Run: ``.venv/bin/python benchmarks/bench_pathnet_conv.py`` (``--help`` for options).
Timings on a shared machine are noisy: use ``--rounds`` and a quiet machine to publish.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from bench_pathnet import sync, time_ours, time_reference  # the same GA loops, timed alike
from pathnet_fer.evolution import EvolutionConfig, TaskData
from pathnet_fer.pathnet import PathNet, PathNetConfig, resolve_device


def conv_specs(cfg: PathNetConfig, batch: int) -> list[dict]:
    """The convolutions of one path's SGD step (N distinct modules per layer), as the
    module type runs them: input and weight shapes, stride, padding, groups, whether the
    input gradient is needed (not for the image), and ``count``: how many such calls a
    step makes (conv: a layer's N modules as one convolution; block: the N modules side
    by side as one wider block, so one convolution with N x C outputs, then grouped
    ones with N groups)."""
    specs = []
    n, k = cfg.max_active, cfg.kernel
    ins = cfg.layer_input_dims()
    for layer, (h, w) in enumerate(cfg.map_sizes()[:-1]):
        stride = 2 if layer < cfg.layers - 1 and cfg.downsample == "stride" else 1
        cin, c, deep = ins[layer], cfg.channels[layer], layer > 0
        oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1

        def add(ch, hw, weight, st, pad, groups, need_input, count):
            specs.append(
                dict(
                    input=(batch, ch, *hw),
                    weight=weight,
                    stride=st,
                    padding=pad,
                    groups=groups,
                    input_grad=need_input,
                    count=count,
                )
            )

        if cfg.module == "conv":
            add(cin, (h, w), (n * c, cin, k, k), stride, k // 2, 1, deep, 1)
            continue
        for j in range(cfg.block_depth):
            ci, hw, st = (cin, (h, w), stride) if j == 0 else (c, (oh, ow), 1)
            need = deep or j > 0
            if cfg.block_conv == "separable":  # the input repeated once per module
                add(n * ci, hw, (n * ci, 1, k, k), st, k // 2, n * ci, need, 1)
                add(n * ci, (oh, ow), (n * c, ci, 1, 1), 1, 0, n, True, 1)
            else:
                add(n * ci if j else ci, hw, (n * c, ci, k, k), st, k // 2, n if j else 1, need, 1)
        if cfg.block_residual and (cin != c or stride != 1):
            add(cin, (h, w), (n * c, cin, 1, 1), stride, 0, 1, deep, 1)
    return specs


def spec_flops(spec: dict) -> float:
    """Forward FLOPs (2 x multiply-adds) of one convolution spec, all its calls."""
    b, _, h, w = spec["input"]
    s, pad = spec["stride"], spec["padding"]
    out_ch, per_group, kh, kw = spec["weight"]
    oh, ow = (h + 2 * pad - kh) // s + 1, (w + 2 * pad - kw) // s + 1
    return 2.0 * b * oh * ow * out_ch * per_group * kh * kw * spec["count"]


def useful_flops_per_generation(net: PathNet, ev: EvolutionConfig, classes: int) -> float:
    """Forward convolutions of 2 paths x N modules, their weight gradients, their input
    gradients where needed, and the readout, over a generation."""
    c = net.config
    per_step = 0.0
    for spec in conv_specs(c, ev.batch_size):
        per_step += spec_flops(spec) * (3 if spec["input_grad"] else 2)
    per_step += 3 * 2 * c.feature_dim() * classes * ev.batch_size
    return 2.0 * ev.minibatches * per_step


def time_convolutions_alone(
    cfg: PathNetConfig,
    ev: EvolutionConfig,
    device: torch.device,
    reps: int = 5,
    dtype: torch.dtype = torch.float32,
) -> float:
    """Seconds per generation of the schedule's convolution kernels alone (forward, then
    ``convolution_backward`` for the weight and, where needed, the input gradient), each
    shape timed on its own (median of ``reps``) in NCHW and in channels-last memory, the
    faster of the two counted (the schedule itself runs block layers channels-last, the
    first one NCHW under bfloat16: a floor that any choice of layouts must stay above),
    in ``dtype``, x its calls per step x 2 paths x ``minibatches`` steps."""
    total = 0.0
    for spec in conv_specs(cfg, ev.batch_size):
        best = math.inf
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(spec["input"], device=device, dtype=dtype)
            x = x.contiguous(memory_format=layout)
            w = torch.randn(spec["weight"], device=device, dtype=dtype)
            st, pad, groups = spec["stride"], spec["padding"], spec["groups"]
            out = F.conv2d(x, w, None, st, pad, 1, groups)
            grad = torch.randn_like(out)
            times = []
            for _ in range(reps + 1):
                sync(device)
                start = time.perf_counter()
                F.conv2d(x, w, None, st, pad, 1, groups)
                torch.ops.aten.convolution_backward(
                    grad,
                    x,
                    w,
                    None,
                    [st, st],
                    [pad, pad],
                    [1, 1],
                    False,
                    [0, 0],
                    groups,
                    [spec["input_grad"], True, False],
                )
                sync(device)
                times.append(time.perf_counter() - start)
            best = min(best, statistics.median(times[1:]))
        total += best * spec["count"]
    return total * 2 * ev.minibatches


def dense_conv_gflops(
    device: torch.device,
    channels_last: bool,
    seconds: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> float:
    """One large 3x3 convolution (64 -> 128 channels, 64 x 56x56): the machine's rate."""
    x = torch.randn(64, 64, 56, 56, device=device, dtype=dtype)
    w = torch.randn(128, 64, 3, 3, device=device, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        w = w.contiguous(memory_format=torch.channels_last)
    for _ in range(2):
        F.conv2d(x, w, padding=1)
    sync(device)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        F.conv2d(x, w, padding=1)
        reps += 1
    sync(device)
    return 2.0 * 64 * 56 * 56 * 128 * 64 * 9 * reps / (time.perf_counter() - start) / 1e9


class ReferenceConvPathNet(nn.Module):
    """The straightforward port: one nn.Conv2d per module, loops over active modules."""

    def __init__(self, cfg: PathNetConfig, classes: int) -> None:
        super().__init__()
        ins = cfg.layer_input_dims()
        self.cfg = cfg
        self.layers = nn.ModuleList(
            nn.ModuleList(
                nn.Conv2d(ins[layer], cfg.channels[layer], cfg.kernel, padding=cfg.kernel // 2)
                for _ in range(cfg.modules)
            )
            for layer in range(cfg.layers)
        )
        self.readout = nn.Linear(cfg.feature_dim(), classes)

    def forward(self, x: torch.Tensor, path: list[list[int]]) -> torch.Tensor:
        h, w, ch = self.cfg.image_shape
        a = x.view(-1, h, w, ch).permute(0, 3, 1, 2)
        a = (a - a.mean((1, 2, 3), keepdim=True)) / (a.std((1, 2, 3), keepdim=True) + 1e-5)
        for layer, active in enumerate(path):
            outs = [torch.relu(self.layers[layer][m](a)) for m in sorted(set(active))]
            a = sum(outs) / len(outs)
            if layer < len(path) - 1:
                a = F.max_pool2d(a, 2)
        return self.readout(a.flatten(1))

    def path_parameters(self, path: list[list[int]]) -> list[nn.Parameter]:
        params = [
            p
            for layer, active in enumerate(path)
            for m in set(active)
            for p in self.layers[layer][m].parameters()
        ]
        return params + list(self.readout.parameters())


class ReferenceBlock(nn.Module):
    """One block module: per convolution an ``nn.Conv2d`` (depthwise + pointwise when
    separable), ``nn.BatchNorm2d``, ReLU; the residual shortcut."""

    def __init__(self, cfg: PathNetConfig, cin: int, c: int, stride: int) -> None:
        super().__init__()
        k = cfg.kernel
        self.convs = nn.ModuleList()
        for j in range(cfg.block_depth):
            ci, s = (cin, stride) if j == 0 else (c, 1)
            if cfg.block_conv == "separable":
                conv = nn.Sequential(
                    nn.Conv2d(ci, ci, k, s, k // 2, groups=ci, bias=False),
                    nn.Conv2d(ci, c, 1, bias=False),
                )
            else:
                conv = nn.Conv2d(ci, c, k, s, k // 2, bias=False)
            self.convs.append(nn.Sequential(conv, nn.BatchNorm2d(c, momentum=cfg.bn_momentum)))
        self.residual = cfg.block_residual
        self.shortcut = None
        if cfg.block_residual and (cin != c or stride != 1):
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, c, 1, stride, bias=False),
                nn.BatchNorm2d(c, momentum=cfg.bn_momentum),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for j, conv in enumerate(self.convs):
            z = conv(h)
            h = torch.relu(z) if j < len(self.convs) - 1 else z
        if self.shortcut is not None:
            z = z + self.shortcut(x)
        elif self.residual:
            z = z + x
        return torch.relu(z)


class ReferenceBlockPathNet(ReferenceConvPathNet):
    """The straightforward port of block modules: one ``ReferenceBlock`` per module."""

    def __init__(self, cfg: PathNetConfig, classes: int) -> None:
        nn.Module.__init__(self)
        ins = cfg.layer_input_dims()
        self.cfg = cfg
        self.layers = nn.ModuleList(
            nn.ModuleList(
                ReferenceBlock(
                    cfg,
                    ins[layer],
                    cfg.channels[layer],
                    2 if layer < cfg.layers - 1 and cfg.downsample == "stride" else 1,
                )
                for _ in range(cfg.modules)
            )
            for layer in range(cfg.layers)
        )
        self.readout = nn.Linear(cfg.feature_dim(), classes)

    def forward(self, x: torch.Tensor, path: list[list[int]]) -> torch.Tensor:
        h, w, ch = self.cfg.image_shape
        a = x.view(-1, h, w, ch).permute(0, 3, 1, 2)
        a = (a - a.mean((1, 2, 3), keepdim=True)) / (a.std((1, 2, 3), keepdim=True) + 1e-5)
        for layer, active in enumerate(path):
            outs = [self.layers[layer][m](a) for m in sorted(set(active))]
            a = sum(outs) / len(outs)
            if layer < len(path) - 1 and self.cfg.downsample == "pool":
                a = F.max_pool2d(a, 2)
        return self.readout(a.flatten(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--generations", type=int, default=8, help="generations timed (ours)")
    parser.add_argument("--reference-generations", type=int, default=4)
    parser.add_argument("--runs", type=int, nargs="*", default=[], help="batched runs to time")
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--module", choices=("conv", "block"), default="conv")
    parser.add_argument("--block-depth", type=int, default=2)
    parser.add_argument("--block-conv", choices=("full", "separable"), default="full")
    parser.add_argument("--block-residual", action="store_true")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="ours: evolution.train_precision (bf16: block modules only; floors in bf16 too)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time reference and ours alternately this many times; median ratio",
    )
    args = parser.parse_args()
    if args.reference_generations < 2 or args.generations < 3:
        parser.error("--reference-generations must be >= 2 and --generations >= 3 (warm-ups)")
    if args.precision != "fp32" and args.module != "block":
        parser.error("--precision bf16 times block modules only (--module block)")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    classes = 6
    block = (
        dict(
            block_depth=args.block_depth,
            block_conv=args.block_conv,
            block_residual=args.block_residual,
        )
        if args.module == "block"
        else {}
    )
    cfg = PathNetConfig(
        input_dim=2304,
        module=args.module,
        image_shape=(48, 48, 1),
        channels=tuple(args.channels),
        **block,
    )
    reference_class = ReferenceBlockPathNet if args.module == "block" else ReferenceConvPathNet
    ev = EvolutionConfig(
        generations=args.generations, selection_samples=256, train_precision=args.precision
    )
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.samples, cfg.input_dim, generator=gen)
    y = torch.randint(0, classes, (args.samples,), generator=gen)
    data = TaskData(x, y)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu x{torch.get_num_threads()} threads"
    )
    print(f"device: {name}; torch {torch.__version__}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if device.type == "cpu" and load > 0.5 * (os.cpu_count() or 1):
        print(f"WARNING: load average {load:.1f} on {os.cpu_count()} cores: timings unreliable")
    what = (
        "conv 3x3"
        if args.module == "conv"
        else (
            f"block of {cfg.block_depth} {cfg.block_conv} 3x3 convs + batch norm"
            + (", residual" if cfg.block_residual else "")
        )
    )
    print(
        f"schedule: {what}, channels {list(cfg.channels)}, L={cfg.layers} M={cfg.modules} "
        f"N={cfg.max_active}, 48x48 grey, {classes} classes, generation = 2 paths x "
        f"{ev.minibatches} minibatches of {ev.batch_size}, training in {ev.train_precision}"
    )
    flops = useful_flops_per_generation(PathNet(cfg, runs=1), ev, classes)
    print(f"useful work: {flops / 1e9:.1f} GFLOP per generation per run")
    # The floors in the precision ours trains in (bf16: the convolutions' inputs and
    # weights in bfloat16, as autocast runs them).
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    dense = dense_conv_gflops(device, channels_last=False, dtype=dtype)
    dense_cl = dense_conv_gflops(device, channels_last=True, dtype=dtype)
    floor, floor_cl = flops / (dense * 1e9), flops / (dense_cl * 1e9)
    print(
        f"dense F.conv2d in {args.precision}: {dense:.1f} GFLOP/s (NCHW), {dense_cl:.1f} GFLOP/s "
        f"(channels-last); floor {floor * 1e3:.0f} ms/generation (NCHW rate), "
        f"{floor_cl * 1e3:.0f} ms (channels-last)"
    )
    kernels = time_convolutions_alone(cfg, ev, device, dtype=dtype)
    print(
        f"the schedule's convolutions alone (its own shapes, each in its faster layout, "
        f"{args.precision}): {kernels * 1e3:.0f} ms/generation = {flops / kernels / 1e9:.1f} GFLOP/s"
    )
    ratios, ours = [], []
    for round_ in range(args.rounds):
        ref = time_reference(
            cfg,
            ev,
            x.to(device),
            y.to(device),
            classes,
            args.reference_generations,
            device,
            1,
            model_class=reference_class,
        )
        one = time_ours(cfg, ev, data, classes, 1, device, 2)
        ratios.append(ref / one)
        ours.append(one)
        tag = f" (round {round_ + 1}/{args.rounds})" if args.rounds > 1 else ""
        print(
            f"reference (nn modules per module, loops, autograd): {ref * 1e3:8.0f} ms/generation"
            f"  {flops / ref / 1e9:6.1f} GFLOP/s{tag}"
        )
        print(
            f"ours, 1 run:                                    {one * 1e3:8.0f} ms/generation"
            f"  {flops / one / 1e9:6.1f} GFLOP/s  x{ref / one:.2f} vs reference{tag}"
        )
    one = statistics.median(ours)
    print(
        f"ours vs floor: {floor / one:.0%} of the NCHW floor, {floor_cl / one:.0%} of the "
        f"channels-last floor, {kernels / one:.0%} of the convolutions-alone floor; 1000 "
        f"generations = {one * 1000 / 60:.1f} min; speed-up over reference "
        f"x{statistics.median(ratios):.2f} (median of {args.rounds})"
    )
    for runs in args.runs:
        many = time_ours(cfg, ev, data, classes, runs, device, 2)
        print(
            f"ours, {runs:3d} runs batched: {many * 1e3:8.0f} ms/generation = "
            f"{many / runs * 1e3:7.1f} ms/run  {flops * runs / many / 1e9:6.1f} GFLOP/s"
        )


if __name__ == "__main__":
    main()
