"""Benchmark: a model file's inference time per face against the crops per forward pass.

A conv or block path's first-layer activations are large (N modules x 8 channels x 48 x
48 floats per crop): a pass over 512 crops leaves the CPU's caches, one over 64 stays in
them. This times ``model(x)`` per face at several row counts (best of ``--repeats``, CPU
time of this process, ``--threads`` torch threads), then ``LoadedModel.predict_proba``,
which passes ``formats.loaded_model.CPU_ROWS_PER_PASS`` rows at a time.

Run: ``.venv/bin/python benchmarks/bench_inference_rows.py`` (the shipped model) or
``--model runs/demo/models/sources/source__fer2013__fold1__it1.pt``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pathnet_fer.formats.loaded_model import CPU_ROWS_PER_PASS
from pathnet_fer.formats.model_file import load_model
from pathnet_fer.pretrained import pretrained_path


def per_face_us(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    parser.add_argument("--faces", type=int, default=2048)
    parser.add_argument("--rows", type=int, nargs="+", default=[16, 32, 64, 128, 512])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model or pretrained_path())
    side = loaded.input.size
    shape = (args.faces, side, side) + ((3,) if loaded.input.input_dim > side * side else ())
    crops = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    x = loaded.features(crops)
    print(f"{loaded.path.name}: {args.faces} faces, {args.threads} thread(s)")
    with torch.inference_mode():
        for rows in args.rows:

            def passes(rows: int = rows) -> None:
                for i in range(0, len(x), rows):
                    loaded.model(x[i : i + rows])

            print(
                f"  {rows:4d} rows per pass: {per_face_us(passes, len(x), args.repeats):7.0f} us/face"
            )
    us = per_face_us(lambda: loaded.predict_proba(crops), len(crops), args.repeats)
    print(f"  predict_proba ({CPU_ROWS_PER_PASS} rows per pass): {us:7.0f} us/face")


if __name__ == "__main__":
    main()
