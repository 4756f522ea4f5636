"""Streaming predictor: frames per second and peak memory, one fresh process per figure.

Measured per clip, each in its own child process (so peak RSS is that run's alone):
- ``decode``: PyAV decoding only (the floor no predictor can beat);
- ``predict``: the full ``Predictor.predict_video`` (decode -> detect -> track -> crop ->
  batched PathNet path -> table), with 1 detection thread and with all cores;
- peak RSS (``ru_maxrss``) of the child, and its growth over the RSS held before the clip
  (imports + model): flat in video length means the long clip's growth is about the short
  clip's.

Clips: ``face-media/WolfgangLanger_Pexels.mp4`` (472 frames, 640x360, the longest shared
clip), ``single_face.mp4`` (72 frames, same size) and, to show memory stays flat in video
length, Wolfgang re-encoded ``--repeat`` times back to back (default 4: 1888 frames).

    .venv/bin/python benchmarks/bench_predict.py [--model MODEL.pt] [--repeat 4]

Without ``--model`` a model is trained for a few generations on CK+48 (speed does not
depend on how well a path was trained). Timings on a shared machine are noisy: rerun on a
quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def _rss_mb() -> float:
    """Current resident set size (MiB) from /proc (Linux); NaN elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    from pathnet_fer.faces.video import iter_frames
    from pathnet_fer.predict import Predictor

    predictor = Predictor.from_file(args.model, workers=args.workers)
    rss_before, peak_before = _rss_mb(), _peak_mb()
    started = time.perf_counter()
    cpu_started = time.process_time()
    if args.stage == "decode":
        fmt = "gray" if predictor.face_settings.colour == "grey" else "rgb24"
        frames = sum(1 for _ in iter_frames(args.clip, 1, fmt))
    else:
        frames = len(predictor.predict_video(args.clip))
    seconds = time.perf_counter() - started
    print(json.dumps({
        "frames": frames,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu_started,
        "fps": frames / seconds,
        "rss_before_mb": rss_before,
        "peak_before_mb": peak_before,
        "peak_mb": _peak_mb(),
    }))  # fmt: skip


def measure(model: Path, clip: Path, stage: str, workers: int) -> dict:
    cmd = [sys.executable, str(HERE), "--child", "--model", str(model), "--clip", str(clip),
           "--stage", stage, "--workers", str(workers)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"measurement failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def quick_model(workdir: Path) -> Path:
    """A PathNet path trained for 5 generations on CK+48, exported with save_model."""
    from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve
    from pathnet_fer.faces.preprocess import preprocess_dataset
    from pathnet_fer.faces.settings import FaceSettings
    from pathnet_fer.pathnet import PathNet, PathNetConfig
    from pathnet_fer.paths import data_root
    from pathnet_fer.predict import save_model

    faces = preprocess_dataset("ckplus48", data_root() / "ckplus48", FaceSettings(),
                               cache_dir=workdir / "cache", progress=False)  # fmt: skip
    net = PathNet(PathNetConfig(input_dim=faces.features().shape[1]), seed=0, device="cpu")
    task = evolve(net, TaskData(faces.features(), faces.labels), n_classes=len(faces.class_names),
                  config=EvolutionConfig(generations=5), seed=0)  # fmt: skip
    return save_model(workdir / "bench.pt", net=net, task=task, run=0,
                      class_names=faces.class_names, face_settings=faces.settings,
                      dataset="ckplus48")  # fmt: skip


def repeat_video(source: Path, times: int, out: Path) -> Path:
    """``source`` played ``times`` times back to back, re-encoded once (H.264)."""
    from pathnet_fer.faces.video import frame_rate, iter_frames
    from pathnet_fer.predict.annotate import VideoAnnotator

    with VideoAnnotator(out, frame_rate(source)) as writer:
        for _ in range(times):
            for _, _, frame in iter_frames(source):
                writer.write(frame)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file (default: train a quick one)")
    parser.add_argument("--repeat", type=int, default=4, help="loops of Wolfgang in the long clip")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stage", default="predict", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from pathnet_fer.paths import data_root

    media = data_root() / "face-media"
    wolfgang, short = media / "WolfgangLanger_Pexels.mp4", media / "single_face.mp4"
    if not wolfgang.exists():
        sys.exit(f"benchmark clip missing: {wolfgang} (set $PATHNET_FER_DATA)")
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        tmp_path = Path(tmp)
        model = args.model or quick_model(tmp_path)
        clips = [short, wolfgang]
        if args.repeat > 1:
            print(
                f"encoding Wolfgang x{args.repeat} for the long-clip memory check ...", flush=True
            )
            clips.append(
                repeat_video(wolfgang, args.repeat, tmp_path / f"wolfgang_x{args.repeat}.mp4")
            )
        print(
            f"model: {model}\nCPU cores: {os.cpu_count()}; timings on a shared machine are noisy\n"
        )
        header = (f"{'clip':28s} {'stage':16s} {'frames':>6s} {'fps':>7s} {'cpu s':>6s} "
                  f"{'RSS before':>10s} {'peak RSS':>9s} {'growth':>7s}")  # fmt: skip
        print(header)
        print("-" * len(header))
        for clip in clips:
            runs = [("decode", 1), ("predict 1 thread", 1)]
            if args.workers > 1:
                runs.append((f"predict {args.workers} thr", args.workers))
            for label, workers in runs:
                stage = "decode" if label == "decode" else "predict"
                r = measure(model, clip, stage, workers)
                growth = r["peak_mb"] - r["rss_before_mb"]
                print(f"{clip.name:28s} {label:16s} {r['frames']:6d} {r['fps']:7.1f} "
                      f"{r['cpu_seconds']:6.1f} {r['rss_before_mb']:8.0f}MB {r['peak_mb']:7.0f}MB "
                      f"{growth:5.0f}MB", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
