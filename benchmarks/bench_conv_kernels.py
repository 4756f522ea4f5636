"""Benchmark: the convolution and pooling kernels behind a conv PathNet step, one at a time.

For the three layers of the default conv schedule (minibatch 16, N=5 modules as one
convolution: 1->40 channels at 48x48, 8->80 at 24x24, 16->160 at 12x12): forward and
backward (``convolution_backward``; the first layer needs no input gradient) GFLOP/s in
NCHW and channels-last memory; and the 2x2 max-pool of the first layer's combined map
(16 x 8 x 48 x 48): ``F.max_pool2d`` vs strided maxima (inference) and pooling with
indices, forward + backward (training). CPU time of this process (``time.process_time``),
one torch thread by default, so other processes on the machine disturb it less.

Run: ``.venv/bin/python benchmarks/bench_conv_kernels.py`` (``--threads N``).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from pathnet_fer.pathnet.conv_ops import max_pool_2x2

LAYERS = ((1, 40, 48), (8, 80, 24), (16, 160, 12))  # (in channels, N x out channels, side)
BATCH = 16


def cpu_ms(fn, reps: int = 40) -> float:
    fn()
    start = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - start) / reps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{args.threads} thread(s); CPU ms per call (GFLOP/s)")
    for cin, cout, side in LAYERS:
        flops = 2 * BATCH * side * side * cout * cin * 9
        row = [f"layer {cin:2d}->{cout:3d} at {side}x{side}:"]
        for name, fmt in (
            ("NCHW", torch.contiguous_format),
            ("channels-last", torch.channels_last),
        ):
            x = torch.randn(BATCH, cin, side, side).contiguous(memory_format=fmt)
            w = torch.randn(cout, cin, 3, 3).contiguous(memory_format=fmt)
            b = torch.randn(cout)
            z = F.conv2d(x, w, b, 1, 1)
            mask = [cin > 1, True, True]
            fwd = cpu_ms(lambda x=x, w=w, b=b: F.conv2d(x, w, b, 1, 1))
            bwd = cpu_ms(
                lambda z=z, x=x, w=w, m=mask: torch.ops.aten.convolution_backward(
                    z, x, w, [w.shape[0]], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, m
                )
            )
            bwd_flops = flops * (2 if cin > 1 else 1)
            row.append(
                f"{name} fwd {fwd:.2f} ({flops / fwd / 1e6:.0f}) bwd {bwd:.2f} "
                f"({bwd_flops / bwd / 1e6:.0f})"
            )
        print("  ".join(row))
    a = torch.randn(BATCH, 8, 48, 48).relu_()
    grad = torch.randn(BATCH, 8, 24, 24)
    print(
        f"max-pool 2x2 of {tuple(a.shape)}: F.max_pool2d {cpu_ms(lambda: F.max_pool2d(a, 2)):.2f} ms, "
        f"strided maxima {cpu_ms(lambda: max_pool_2x2(a)):.2f} ms (equal: "
        f"{torch.equal(F.max_pool2d(a, 2), max_pool_2x2(a))})"
    )

    def indices_fwd_bwd() -> None:
        out, where = F.max_pool2d_with_indices(a, 2)
        torch.ops.aten.max_pool2d_with_indices_backward(
            grad, a, [2, 2], [2, 2], [0, 0], [1, 1], False, where
        )

    print(f"training pool with indices, forward + backward: {cpu_ms(indices_fwd_bwd):.2f} ms")


if __name__ == "__main__":
    main()
