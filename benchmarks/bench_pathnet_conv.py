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

Run: ``.venv/bin/python benchmarks/bench_pathnet_conv.py`` (``--help`` for options).
Timings on a shared machine are noisy: use ``--rounds`` and a quiet machine to publish.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from bench_pathnet import sync, time_ours, time_reference  # the same GA loops, timed alike
from pathnet_fer.evolution import EvolutionConfig, TaskData
from pathnet_fer.pathnet import PathNet, PathNetConfig, resolve_device


def useful_flops_per_generation(net: PathNet, ev: EvolutionConfig, classes: int) -> float:
    kind = net.module_type
    c = net.config
    per_layer = []
    for layer, (h, w) in enumerate(kind.output_maps()):
        per_layer.append(2 * h * w * c.max_active * kind.fan_in(layer) * c.channels[layer])
    forward = sum(per_layer)
    backward = sum(per_layer) + sum(per_layer[1:])
    readout = 3 * 2 * c.feature_dim() * classes
    per_sample = forward + backward + readout
    return 2.0 * ev.minibatches * ev.batch_size * per_sample


def dense_conv_gflops(device: torch.device, channels_last: bool, seconds: float = 1.0) -> float:
    """One large 3x3 convolution (64 -> 128 channels, 64 x 56x56): the machine's rate."""
    x = torch.randn(64, 64, 56, 56, device=device)
    w = torch.randn(128, 64, 3, 3, device=device)
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--generations", type=int, default=8, help="generations timed (ours)")
    parser.add_argument("--reference-generations", type=int, default=4)
    parser.add_argument("--runs", type=int, nargs="*", default=[], help="batched runs to time")
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time reference and ours alternately this many times; median ratio",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    classes = 6
    cfg = PathNetConfig(
        input_dim=2304, module="conv", image_shape=(48, 48, 1), channels=tuple(args.channels)
    )
    ev = EvolutionConfig(generations=args.generations, selection_samples=256)
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
    print(
        f"schedule: conv 3x3, channels {list(cfg.channels)}, L={cfg.layers} M={cfg.modules} "
        f"N={cfg.max_active}, 48x48 grey, {classes} classes, generation = 2 paths x "
        f"{ev.minibatches} minibatches of {ev.batch_size}"
    )
    flops = useful_flops_per_generation(PathNet(cfg, runs=1), ev, classes)
    print(f"useful work: {flops / 1e9:.1f} GFLOP per generation per run")
    dense = dense_conv_gflops(device, channels_last=False)
    dense_cl = dense_conv_gflops(device, channels_last=True)
    floor, floor_cl = flops / (dense * 1e9), flops / (dense_cl * 1e9)
    print(
        f"dense F.conv2d: {dense:.1f} GFLOP/s (NCHW), {dense_cl:.1f} GFLOP/s (channels-last); "
        f"floor {floor * 1e3:.0f} ms/generation (NCHW rate), {floor_cl * 1e3:.0f} ms (channels-last)"
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
            model_class=ReferenceConvPathNet,
        )
        one = time_ours(cfg, ev, data, classes, 1, device, 2)
        ratios.append(ref / one)
        ours.append(one)
        tag = f" (round {round_ + 1}/{args.rounds})" if args.rounds > 1 else ""
        print(
            f"reference (nn.Conv2d per module, loops, autograd): {ref * 1e3:8.0f} ms/generation"
            f"  {flops / ref / 1e9:6.1f} GFLOP/s{tag}"
        )
        print(
            f"ours, 1 run:                                    {one * 1e3:8.0f} ms/generation"
            f"  {flops / one / 1e9:6.1f} GFLOP/s  x{ref / one:.2f} vs reference{tag}"
        )
    one = statistics.median(ours)
    print(
        f"ours vs floor: {floor / one:.0%} of the NCHW floor, {floor_cl / one:.0%} of the "
        f"channels-last floor; 1000 generations = {one * 1000 / 60:.1f} min; speed-up over "
        f"reference x{statistics.median(ratios):.2f} (median of {args.rounds})"
    )
    for runs in args.runs:
        many = time_ours(cfg, ev, data, classes, runs, device, 2)
        print(
            f"ours, {runs:3d} runs batched: {many * 1e3:8.0f} ms/generation = "
            f"{many / runs * 1e3:7.1f} ms/run  {flops * runs / many / 1e9:6.1f} GFLOP/s"
        )


if __name__ == "__main__":
    main()
