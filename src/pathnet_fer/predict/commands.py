"""CLI sub-commands of the ``predict`` stage: ``pathnet-fer predict`` and ``evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from pathnet_fer.predict.cli_shared import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SOME_SKIPPED,
    add_head_option,
    add_mirror_option,
    add_prior_option,
    mirror_choice,
    model_or_shipped,
    resolve_device,
)
from pathnet_fer.predict.evaluate_command import register_evaluate

EPILOG = """\
output: one CSV row per analysed frame and face (columns: file, frame, timestamp,
face_x, face_y, face_w, face_h, detection, p_<emotion>..., emotion; see docs/predict.md).
A frame without a face keeps its row with an empty box and empty probabilities.
A per-file summary (mean probabilities, majority emotion) is printed and written to
OUT with suffix .summary.csv.

exit status: 0 all inputs processed; 3 results written but some inputs were skipped
or only partly decoded (listed on stderr: "skipped:" / "incomplete:"); 1 the model
was refused or no input could be processed.

Without --model the shipped pretrained model is used (pathnet-fer pretrained info;
docs/model-card.md); --model takes any model file.

examples:
  pathnet-fer predict clip.mp4
  pathnet-fer predict --info                          # the shipped model's summary
  pathnet-fer predict --model runs/demo/models/fer2013-to-ckplus48/final.pt clip.mp4
  pathnet-fer predict --model model.pt videos/ 'more/*.flv' --out preds.csv --every 2
  pathnet-fer predict --model model.pt talk.mp4 --annotate talk_annotated.mp4
  pathnet-fer predict --model model.pt --info
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``predict`` and ``evaluate``."""
    p = sub.add_parser(
        "predict",
        help="predict emotions per frame in videos and images with a trained model file",
        description=(
            "Run a trained PathNet model file on videos, images, folders or globs: "
            "decode, detect faces (Viola-Jones, previous-face fallback), classify every "
            "analysed frame in batches, write one row per frame and face."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="video or image files, folders (searched recursively) or quoted globs",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help="model file exported by a training run (e.g. <run>/models/*.pt); default: the "
        "shipped pretrained model",
    )
    p.add_argument(
        "--out",
        default="predictions.csv",
        metavar="CSV",
        help="per-frame predictions CSV (default: %(default)s; overwritten)",
    )
    p.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="K",
        help="analyse every K-th frame (frame indices stay those of the clip; default 1)",
    )
    p.add_argument(
        "--annotate",
        metavar="VIDEO",
        help="also write an H.264 video with boxes and labels (images: PNG); with several "
        "inputs, one file per input (<stem>_<input>.mp4, or into a folder)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=64,
        metavar="B",
        help="face crops per network call (default %(default)s)",
    )
    p.add_argument(
        "--max-fallback",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="reuse the previous face for at most this long after the detector loses it, "
        "then report no face (default %(default)s; 0 = never; inf = the paper's unbounded rule)",
    )
    p.add_argument(
        "--no-detect",
        action="store_true",
        help="inputs are already face crops: use whole frames, no face detector",
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default %(default)s)")
    p.add_argument(
        "--info",
        action="store_true",
        help="print what the model file holds (classes, input, settings, metadata) and exit; "
        "without --model: the shipped model's summary",
    )
    add_head_option(p, "as both (all: the combination plus each head's columns)")
    add_mirror_option(p)
    add_prior_option(p)
    p.add_argument("--quiet", action="store_true", help="no per-file progress lines")
    p.set_defaults(func=run_predict)
    register_evaluate(sub)


def run_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pathnet_fer.faces.video import frame_count_hint, is_image
    from pathnet_fer.formats.loaded_model import ModelFileError
    from pathnet_fer.formats.model_file import load_model, read_header
    from pathnet_fer.predict.outputs import OutputError
    from pathnet_fer.predict.predictor import Predictor

    if args.every < 1 or args.batch_size < 1:
        print("error: --every and --batch-size must be at least 1", file=sys.stderr)
        return EXIT_FAILED
    if not args.max_fallback >= 0:
        print("error: --max-fallback must be >= 0 seconds (or inf)", file=sys.stderr)
        return EXIT_FAILED
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    model_path = model_or_shipped(args.model, quiet=args.info)
    if model_path is None:
        return EXIT_FAILED
    try:
        if args.info:
            from pathnet_fer.pretrained.info import summary

            text = None if args.model else summary(model_path)
            if text:
                print(f"{text}\n\nfile: {model_path} (everything it holds: "
                      f"pathnet-fer predict --model {model_path} --info)")  # fmt: skip
            else:
                print(json.dumps(read_header(model_path), indent=2))
            return EXIT_OK
        model = load_model(model_path, device=device)
        predictor = Predictor(
            model,
            batch_size=args.batch_size,
            detect=not args.no_detect,
            max_fallback_s=args.max_fallback,
            head=args.head,
            mirror=mirror_choice(args.mirror),
            prior=args.prior,
        )
    except ModelFileError as error:
        print(f"error: model refused: {error}", file=sys.stderr)
        return EXIT_FAILED
    if not args.inputs:
        print("error: give at least one INPUT (video, image, folder or glob)", file=sys.stderr)
        return EXIT_FAILED

    out = Path(args.out)
    summary_path = out.with_name(out.stem + ".summary.csv")
    try:
        _check_outputs(args.inputs, out, summary_path, args.annotate)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)  # no stale rows if no input can be processed
    except OutputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as error:
        print(f"error: cannot write the outputs: {error}", file=sys.stderr)
        return EXIT_FAILED
    state = {"header": True, "started": time.perf_counter(), "rows": 0}

    def on_file(path: str, table: pd.DataFrame) -> None:
        if bar["tqdm"] is not None:
            bar["tqdm"].close()
            bar["tqdm"] = None
        table.to_csv(out, mode="w" if state["header"] else "a", header=state["header"], index=False)
        state["header"] = False
        state["rows"] += len(table)
        if not args.quiet:
            seconds = time.perf_counter() - state["file_started"]
            frames = table["frame"].nunique()
            with_face = table["detection"].ne("none")
            faces, frames_with = int(with_face.sum()), table.loc[with_face, "frame"].nunique()
            several = f" ({faces} faces)" if faces > frames_with else ""
            print(
                f"  {frames} frames, {frames_with} with a face{several}, "
                f"{frames / max(seconds, 1e-9):.1f} frames/s",
                file=sys.stderr,
            )

    bar = {"tqdm": None}

    def progress(path: str) -> None:
        state["file_started"] = time.perf_counter()
        if bar["tqdm"] is not None:
            bar["tqdm"].close()
            bar["tqdm"] = None
        if args.quiet:
            return
        print(f"{path}", file=sys.stderr)
        if not is_image(path):
            hint = frame_count_hint(path)
            total = -(-hint // args.every) if hint else None
            bar["tqdm"] = tqdm(total=total, unit="frame", leave=False, file=sys.stderr)

    def on_chunk(rows: int) -> None:
        if bar["tqdm"] is not None:
            bar["tqdm"].update(rows)

    result = predictor.predict_paths(
        args.inputs,
        every=args.every,
        annotate=args.annotate,
        on_file=on_file,
        progress=progress,
        keep_predictions=False,  # rows go to the CSV file by file: memory stays flat
        on_chunk=on_chunk,
    )
    if bar["tqdm"] is not None:
        bar["tqdm"].close()
    for problem in result.problems:
        if problem.rows_kept:
            print(f"incomplete: {problem.file}: {problem.reason} ({problem.rows_kept} rows kept)",
                  file=sys.stderr)  # fmt: skip
        else:
            print(f"skipped: {problem.file}: {problem.reason}", file=sys.stderr)
    if not result.files:
        print("error: no input could be processed", file=sys.stderr)
        return EXIT_FAILED
    summary = result.summary
    summary.to_csv(summary_path, index=False)
    _print_summary(summary, predictor.class_names)
    seconds = time.perf_counter() - state["started"]
    print(
        f"\n{state['rows']} rows from {len(result.files)} file(s) in {seconds:.1f} s "
        f"-> {out}, summary -> {summary_path}"
        + (f"; {len(result.problems)} input(s) skipped or incomplete" if result.problems else "")
    )
    return EXIT_SOME_SKIPPED if result.problems else EXIT_OK


def _check_outputs(inputs: list[str], out: Path, summary: Path, annotate: str | None) -> None:
    """Refuse outputs that are inputs (or each other) or cannot be written; nothing is
    read, written or removed before this passes (``OutputError``, one line)."""
    from pathnet_fer.predict.inputs import expand_inputs
    from pathnet_fer.predict.outputs import annotation_targets, check_outputs, check_writable

    files = expand_inputs(inputs).files
    outputs = [("--out", out), ("the summary CSV", summary)]
    if annotate:
        outputs += [("--annotate", target) for target in annotation_targets(annotate, files)]
    check_outputs(files, outputs)
    check_writable(outputs)


def _print_summary(summary: pd.DataFrame, class_names: list[str]) -> None:
    show = pd.DataFrame(
        {
            "file": summary["file"].map(lambda f: Path(str(f)).name),
            "frames": summary["frames"],
            "with_face": summary["frames_with_face"],
            "majority": summary["emotion_majority"].astype(object).fillna("-"),
            "share": summary["majority_share"].round(2),
            "mean_vote": summary["emotion_mean"].astype(object).fillna("-"),
            "p_max": summary[[f"p_{c}" for c in class_names]].max(axis=1).round(2),
        }
    )
    print(show.to_string(index=False))
