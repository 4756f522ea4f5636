"""Face-extraction speed and agreement: the pipeline against a plain OpenCV reference.

Reference (the obvious implementation): decode with ``cv2.VideoCapture``, run
``detectMultiScale`` with default parameters on every full-resolution grey frame, in one
process (OpenCV uses its own threads), then apply the same previous-face rule.
Pipeline: ``preprocess_samples`` as the CLI runs it (PyAV decode, detection on a frame
downscaled to ``detect_side``, crops, cache entries written; all cores; fresh cache).

Printed: frames per second of both, the ratio, and the agreement: the share of frames
whose face box has IoU >= 0.8 with the reference's box (target: ratio >= 3, agreement
>= 98%). Timings on a shared machine are noisy; rerun on a quiet one.

    .venv/bin/python benchmarks/bench_faces.py [--workers N] [--recheck-every K] [--repeat R]

``--recheck-every 1`` measures the strict mode (full-frame search on every frame).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pathnet_fer.faces.detector import CASCADE_FILE
from pathnet_fer.faces.extraction_pool import default_workers
from pathnet_fer.faces.preprocess import preprocess_samples
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.faces.tracking import assign_boxes
from pathnet_fer.paths import data_root


def clips(root: Path) -> list[Path]:
    found = [root / "face-media" / "WolfgangLanger_Pexels.mp4"]
    found += sorted((root / "crema-d-sample" / "VideoFlash").glob("*.flv"))
    missing = [p for p in found if not p.exists()]
    if missing or len(found) < 2:
        sys.exit(f"benchmark media missing under {root}: {missing or 'CREMA-D clips'}")
    return found


def reference(path: Path, max_frames: int) -> tuple[np.ndarray, int, float]:
    """Plain OpenCV: decode every frame, full-resolution Haar with defaults, previous-face rule."""
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / CASCADE_FILE))
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(path))
    detections = []
    while len(detections) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        found = cascade.detectMultiScale(grey)
        detections.append(np.asarray(found, dtype=np.int32).reshape(-1, 4))
    capture.release()
    seconds = time.perf_counter() - started
    clip = assign_boxes(detections, "previous")
    boxes = clip.boxes if clip is not None else np.full((len(detections), 4), -1, np.int32)
    return boxes, len(detections), seconds


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two ``(n, 4)`` x, y, w, h arrays."""
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="pipeline processes (all cores)")
    parser.add_argument("--max-frames", type=int, default=10**9, help="reference frames per clip")
    parser.add_argument("--detect-side", type=int, default=FaceSettings().detect_side)
    parser.add_argument(
        "--recheck-every",
        type=int,
        default=FaceSettings().recheck_every,
        help="full-frame search every K frames while a face is followed (1 = every frame)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="pipeline runs (best is kept)")
    args = parser.parse_args(argv)
    paths = clips(data_root())
    workers = args.workers or default_workers()

    ref_boxes, ref_frames, ref_seconds = {}, 0, 0.0
    for path in paths:
        boxes, n, seconds = reference(path, args.max_frames)
        ref_boxes[path.name] = boxes
        ref_frames += n
        ref_seconds += seconds
        print(f"reference {path.name}: {n} frames, {n / seconds:.1f} fps", flush=True)

    samples = pd.DataFrame(
        {
            "path": [str(p) for p in paths],
            "dataset": "bench",
            "subject": "s",
            "clip": [p.name for p in paths],
            "emotion": "happiness",
            "label": "bench",
            "media": "video",
            "split": "",
        }
    )
    settings = FaceSettings(
        detect=True, detect_side=args.detect_side, recheck_every=args.recheck_every
    )
    best = None
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:  # fresh cache: everything is decoded
            started = time.perf_counter()
            dataset = preprocess_samples(
                samples, "bench", settings, cache_dir=cache, workers=workers, progress=False
            )
            seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    frames = dataset.frames
    our_frames = int(dataset.manifest["n_frames"].sum())

    agree, compared = 0, 0
    for name, ref in ref_boxes.items():
        ours = frames[frames["clip"] == name]
        ours_boxes = np.full((len(ref), 4), -1, dtype=np.int64)
        index = ours["frame_index"].to_numpy()
        keep = index < len(ref)
        ours_boxes[index[keep]] = ours[["x", "y", "w", "h"]].to_numpy()[keep]
        overlap = iou(ref.astype(np.int64), ours_boxes)
        valid = (ref[:, 2] > 0) | (ours_boxes[:, 2] > 0)
        good = int(((overlap >= 0.8) & valid).sum())
        agree += good
        compared += int(valid.sum())
        print(
            f"agreement {name}: {good}/{int(valid.sum())} frames with IoU >= 0.8, "
            f"median IoU {np.median(overlap[valid]) if valid.any() else float('nan'):.3f}"
        )

    ref_fps = ref_frames / ref_seconds
    our_fps = our_frames / best
    print()
    print(
        f"clips: {len(paths)} (WolfgangLanger_Pexels.mp4 + CREMA-D sample), cores: "
        f"{default_workers()}, pipeline workers: {workers}, detect_side: {args.detect_side}, "
        f"recheck_every: {args.recheck_every}"
    )
    print(
        f"reference (cv2.VideoCapture + full-res detectMultiScale, defaults): "
        f"{ref_frames} frames in {ref_seconds:.1f} s = {ref_fps:.1f} fps"
    )
    print(
        f"pipeline  (PyAV + downscaled Haar near the face + crops + cache, {workers} workers): "
        f"{our_frames} frames in {best:.1f} s = {our_fps:.1f} fps"
    )
    print(f"speed-up: {our_fps / ref_fps:.2f}x (target >= 3x)")
    share = agree / compared if compared else float("nan")
    print(f"agreement: {agree}/{compared} frames = {share:.1%} with IoU >= 0.8 (target >= 98%)")
    cached_load(data_root() / "ckplus48", workers)
    return 0


def cached_load(root: Path, workers: int) -> None:
    """Seconds to load CK+48 (927 crops) from its cache: target well under a second."""
    if not root.is_dir():
        print(f"CK+48 not found under {root}: cached-load timing skipped")
        return
    from pathnet_fer.faces.preprocess import preprocess_dataset

    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        built = preprocess_dataset(
            "ckplus48", root, cache_dir=cache, workers=workers, progress=False
        )
        build = time.perf_counter() - started
        times = []
        for _ in range(5):
            started = time.perf_counter()
            loaded = preprocess_dataset("ckplus48", root, cache_dir=cache, progress=False)
            times.append(time.perf_counter() - started)
            assert loaded.report.consolidated and loaded.report.processed == 0
    print(
        f"CK+48: built {len(built)} crops in {build:.2f} s; loading from the cache "
        f"(scan + file identities + consolidated npz): median {np.median(times):.3f} s, "
        f"best {min(times):.3f} s over 5 loads"
    )


if __name__ == "__main__":
    sys.exit(main())
