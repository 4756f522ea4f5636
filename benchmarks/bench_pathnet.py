"""Benchmark: PathNet evolution at the paper's schedule vs a straightforward reference.

One generation = 2 paths x 50 SGD steps on minibatches of 16 (lr 0.02), L=3, M=20,
U=20, N=5, on 48x48 inputs (2304 features) and 6 classes. Random data (timing only).

- ours: ``pathnet_fer.evolution.evolve`` (stacked modules, batched manual SGD), for one
  run and for a batch of runs (``--runs``), ms per generation (median after warm-up)
  and ms per generation per run;
- reference: one ``nn.Linear`` per module, a Python loop over a path's active modules,
  the two paths one after the other, a fresh ``torch.optim.SGD`` per path, autograd;
- GFLOP/s achieved (useful FLOPs of the schedule / time) beside ``torch.matmul``
  GFLOP/s measured in the same process: a large square matmul (the machine's limit)
  and the schedule's own shape (16 x 2304 @ 2304 x 100);
- the first layer's two products per step alone (the arithmetic floor of any exact
  step-by-step SGD of the schedule): ``reference / floor`` bounds the reachable speed-up.

Run: ``.venv/bin/python benchmarks/bench_pathnet.py`` (``--help`` for options).
Timings on a shared machine are noisy: rerun on a quiet one for figures to publish.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve
from pathnet_fer.pathnet import PathNet, PathNetConfig, resolve_device
from pathnet_fer.pathnet.genotype import mutate, random_genotypes


def flops_per_generation(cfg: PathNetConfig, classes: int, ev: EvolutionConfig) -> float:
    """Useful FLOPs of one generation: forward + backward (weight grads everywhere, input
    grads above the first layer) of 2 paths with N distinct modules per layer."""
    b, k = ev.batch_size, cfg.max_active * cfg.units
    first = 2 * b * cfg.input_dim * k
    hidden = (cfg.layers - 1) * 2 * b * cfg.units * k
    readout = 2 * b * cfg.units * classes
    per_step = 2 * first + 3 * (hidden + readout)
    return 2.0 * ev.minibatches * per_step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(
    n: int, m: int, k: int, device: torch.device, batch: int = 1, seconds: float = 1.0
) -> float:
    a = torch.randn(batch, n, k, device=device)
    b = torch.randn(batch, k, m, device=device)
    for _ in range(3):
        torch.matmul(a, b)
    sync(device)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        reps += 1
    sync(device)
    return 2.0 * batch * n * m * k * reps / (time.perf_counter() - start) / 1e9


def time_first_layer_floor(
    cfg: PathNetConfig, ev: EvolutionConfig, device: torch.device, reps: int = 5
) -> float:
    """Median seconds per generation of the first layer's two products alone (forward
    ``x @ W^T`` and update ``W += dZ^T x`` per step, 2 paths, 50 steps): the arithmetic
    that any exact step-by-step SGD of the schedule must do, so ``reference / floor``
    bounds the speed-up reachable on this machine without changing the arithmetic."""
    g, b, k = 2, ev.batch_size, cfg.max_active * cfg.units
    x = torch.rand(g, b, cfg.input_dim, device=device)
    w = torch.rand(g, k, cfg.input_dim, device=device)
    bias = torch.rand(g, 1, k, device=device)
    w_t = w.transpose(1, 2)
    times = []
    for _ in range(reps + 1):
        sync(device)
        start = time.perf_counter()
        for _ in range(ev.minibatches):
            z = torch.baddbmm(bias, x, w_t)
            w.baddbmm_(z.transpose(1, 2), x, alpha=-1e-9)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def time_ours(
    cfg: PathNetConfig,
    ev: EvolutionConfig,
    data: TaskData,
    classes: int,
    runs: int,
    device: torch.device,
    warmup: int,
) -> float:
    """Median seconds per generation of ``evolve`` with ``runs`` runs batched."""
    net = PathNet(cfg, runs=runs, seed=0, device=device)
    seconds: list[float] = []
    evolve(
        net,
        data,
        n_classes=classes,
        config=ev,
        seed=0,
        callbacks=[lambda e: seconds.append(e.seconds)],
    )
    return statistics.median(seconds[warmup:])


class ReferencePathNet(nn.Module):
    """The straightforward port: one nn.Linear per module, loops over active modules."""

    def __init__(self, cfg: PathNetConfig, classes: int) -> None:
        super().__init__()
        dims = cfg.layer_input_dims()
        self.cfg = cfg
        self.layers = nn.ModuleList(
            nn.ModuleList(nn.Linear(dims[layer], cfg.units) for _ in range(cfg.modules))
            for layer in range(cfg.layers)
        )
        self.readout = nn.Linear(cfg.units, classes)

    def forward(self, x: torch.Tensor, path: list[list[int]]) -> torch.Tensor:
        a = x
        for layer, active in enumerate(path):
            outs = [torch.relu(self.layers[layer][m](a)) for m in active]
            a = sum(outs) / len(outs)
        return self.readout(a)

    def path_parameters(self, path: list[list[int]]) -> list[nn.Parameter]:
        params = [
            p
            for layer, active in enumerate(path)
            for m in set(active)
            for p in self.layers[layer][m].parameters()
        ]
        return params + list(self.readout.parameters())


def time_reference(
    cfg: PathNetConfig,
    ev: EvolutionConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    classes: int,
    generations: int,
    device: torch.device,
    warmup: int,
    model_class: type[nn.Module] | None = None,
) -> float:
    """Median seconds per generation of the reference microbial GA (``model_class``:
    the reference network, default ``ReferencePathNet``; it needs ``path_parameters``)."""
    gen = torch.Generator().manual_seed(0)
    model = (model_class or ReferencePathNet)(cfg, classes).to(device)
    population = random_genotypes((ev.population,), cfg.layers, cfg.max_active, cfg.modules, gen)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for _ in range(generations):
        start = time.perf_counter()
        pair = torch.randperm(ev.population, generator=gen)[:2].tolist()
        fitness = []
        for member in pair:
            path = population[member].tolist()
            opt = torch.optim.SGD(model.path_parameters(path), lr=ev.lr)
            correct = 0
            for _ in range(ev.minibatches):
                rows = torch.randint(0, x.shape[0], (ev.batch_size,), generator=gen).to(device)
                logits = model(x[rows], path)
                loss = loss_fn(logits, y[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
                correct += int((logits.argmax(1) == y[rows]).sum())
            fitness.append(correct)
        win, lose = (pair[0], pair[1]) if fitness[0] >= fitness[1] else (pair[1], pair[0])
        population[lose] = mutate(
            population[win], cfg.modules, gen, 1.0 / (cfg.layers * cfg.max_active)
        )
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--generations", type=int, default=20, help="generations timed for ours (default 20)"
    )
    parser.add_argument(
        "--reference-generations", type=int, default=6, help="generations of the reference"
    )
    parser.add_argument(
        "--runs", type=int, nargs="+", default=[8], help="batch sizes of runs to time (default 8)"
    )
    parser.add_argument(
        "--samples", type=int, default=4096, help="random training samples (default 4096)"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: unchanged)"
    )
    parser.add_argument(
        "--sequential", action="store_true", help="also time pair_training='sequential'"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time reference and ours (1 run) this many times, alternating, and report the "
        "median ratio (robust when other processes load the machine; default 1)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    classes = 6
    cfg = PathNetConfig(input_dim=2304)
    ev = EvolutionConfig(generations=args.generations)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.samples, cfg.input_dim, generator=gen)
    y = torch.randint(0, classes, (args.samples,), generator=gen)
    data = TaskData(x, y)
    warmup = 2
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu x{torch.get_num_threads()} threads"
    )
    print(f"device: {name}; torch {torch.__version__}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if device.type == "cpu" and load > (os.cpu_count() or 1):
        print(
            f"WARNING: load average {load:.1f} on {os.cpu_count()} cores: other processes compete, "
            "timings are unreliable (try --threads 1, or rerun on a quiet machine)"
        )
    print(
        f"schedule: L={cfg.layers} M={cfg.modules} U={cfg.units} N={cfg.max_active}, input {cfg.input_dim}, "
        f"{classes} classes, generation = 2 paths x {ev.minibatches} minibatches of {ev.batch_size}"
    )
    flops = flops_per_generation(cfg, classes, ev)
    print(f"useful work: {flops / 1e9:.3f} GFLOP per generation per run")
    peak = matmul_gflops(2048, 2048, 2048, device, seconds=1.0)
    small = matmul_gflops(16, 100, 2304, device, batch=2, seconds=1.0)
    print(
        f"torch.matmul: {peak:.1f} GFLOP/s (2048^3), {small:.1f} GFLOP/s (2 x 16x2304 @ 2304x100)"
    )

    floor = time_first_layer_floor(cfg, ev, device)
    ratios = []
    for round_ in range(args.rounds):
        ref = time_reference(
            cfg, ev, x.to(device), y.to(device), classes, args.reference_generations, device, 1
        )
        one = time_ours(cfg, ev, data, classes, 1, device, warmup)
        ratios.append(ref / one)
        tag = f" (round {round_ + 1}/{args.rounds})" if args.rounds > 1 else ""
        print(
            f"reference (nn.Linear per module, loops, fresh optimizer): {ref * 1e3:9.1f} ms/generation"
            f"  {flops / ref / 1e9:7.1f} GFLOP/s{tag}"
        )
        print(
            f"ours, 1 run:                {one * 1e3:9.1f} ms/generation  {flops / one / 1e9:7.1f} GFLOP/s"
            f"  speed-up x{ref / one:.1f}{tag}"
        )
    if args.rounds > 1:
        print(f"speed-up, median over {args.rounds} rounds: x{statistics.median(ratios):.1f}")
    print(
        f"first layer's products alone (floor of exact per-step SGD): {floor * 1e3:9.1f} ms/generation"
        f" = {floor / one:.0%} of ours; reference / floor = x{ref / floor:.1f}"
    )
    if args.sequential:
        seq = time_ours(
            cfg,
            EvolutionConfig(generations=args.generations, pair_training="sequential"),
            data,
            classes,
            1,
            device,
            warmup,
        )
        print(
            f"ours, 1 run, sequential:    {seq * 1e3:9.1f} ms/generation  {flops / seq / 1e9:7.1f} GFLOP/s"
            f"  speed-up x{ref / seq:.1f}"
        )
    for runs in args.runs:
        many = time_ours(cfg, ev, data, classes, runs, device, warmup)
        per_run = many / runs
        print(
            f"ours, {runs:3d} runs batched: {many * 1e3:9.1f} ms/generation = {per_run * 1e3:7.1f} ms/run"
            f"  {flops * runs / many / 1e9:7.1f} GFLOP/s  speed-up x{ref / per_run:.1f} per run"
        )


if __name__ == "__main__":
    main()
