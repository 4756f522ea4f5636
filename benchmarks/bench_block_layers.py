"""Benchmark: where a block path's training step spends its time, one layer at a time.

For each layer of ``--channels`` (block modules, ``--layers`` from the channel list, 48 x
48 grey crops, 2x2 pooling after every layer but the last), one minibatch (``--batch``,
the paper's 16) through the layer's N active modules with ``pathnet.block_ops.block_layer``
(the code the training runs: channels-last, batch norm in training mode), forward and
autograd backward, CPU time of this process, one torch thread by default. It shows which
layers capacity is cheap in: the first layer's 48 x 48 maps cost most per FLOP.

Run: ``.venv/bin/python benchmarks/bench_block_layers.py --channels 8 16 32 64 --residual``.
"""

from __future__ import annotations

import argparse

import torch

from bench_conv_kernels import cpu_ms  # this folder: run as a script
from pathnet_fer.pathnet.block_ops import BlockLayout, block_layer, training_norm
from pathnet_fer.pathnet.config import PathNetConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--residual", action="store_true")
    parser.add_argument("--active", type=int, default=5, help="N: modules per layer")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = PathNetConfig(
        input_dim=48 * 48,
        module="block",
        image_shape=(48, 48, 1),
        layers=len(args.channels),
        channels=tuple(args.channels),
        max_active=args.active,
        block_residual=args.residual,
    )
    gen = torch.Generator().manual_seed(0)
    maps = config.map_sizes()
    n, total = args.active, 0.0
    print(f"block path {args.channels}, N={n}, batch {args.batch}, {args.threads} thread(s)")
    for layer in range(config.layers):
        layout = BlockLayout.for_layer(config, layer)
        flat, stats = layout.initial_values((n,), gen, "he-combine")
        parts = {k: v.requires_grad_() for k, v in layout.split(flat).items()}
        stats = layout.split_stats(stats)
        h, w = maps[layer]
        x = torch.randn(args.batch, layout.cin, h, w, generator=gen)
        pool = layer < config.layers - 1
        norm = training_norm(0, 0.1)

        def step(x=x, parts=parts, stats=stats, layout=layout, pool=pool, norm=norm) -> None:
            out = block_layer(x, parts, stats, layout, n, "mean", pool, norm)
            out.sum().backward()

        ms = cpu_ms(step, args.reps)
        total += ms
        flops = 3 * args.batch * n * layout.forward_flops(h, w)  # forward + backward ~ 3x
        print(
            f"  layer {layer + 1}: {layout.cin:3d} -> {layout.channels:3d} at {h}x{w}: "
            f"{ms:6.1f} ms per step ({flops / ms / 1e6:5.1f} GFLOP/s)"
        )
    print(f"  all layers: {total:.1f} ms per step (a generation: 2 paths x 50 steps)")


if __name__ == "__main__":
    main()
