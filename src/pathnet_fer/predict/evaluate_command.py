"""``pathnet-fer evaluate``: a model file scored on every face of a labelled dataset."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pathnet_fer.predict.cli_shared import (
    EXIT_FAILED,
    EXIT_OK,
    add_head_option,
    add_mirror_option,
    add_prior_option,
    mirror_choice,
    model_or_shipped,
    resolve_device,
)

EVALUATE_EPILOG = """\
MODEL defaults to the shipped pretrained model. DATASET is a dataset of --config CFG
(its datasets: and face settings), or without --config an adapter (crema-d, ckplus48,
jaffe, fer2013, ...) or its shared-data folder
(crema-d-sample), cropped with the model's own face settings. Classes are matched by
emotion name; a dataset class the model lacks counts as wrong. Crops are cached as for
experiments.

output: a Markdown summary (printed, and OUT/summary.md), OUT/frames.csv (one row per
face crop: clip, subject, frame_index, true, pred, correct, p_max, p_<emotion>...),
OUT/clips.csv (clip, subject, true, majority, mean_proba, n_frames, mean_max_proba, ...)
and OUT/summary.csv (one row of scores). See docs/predict.md.

exit status: 0 scored; 1 the model, the dataset or its crops were refused.

examples:
  pathnet-fer evaluate --dataset crema-d-sample      # the shipped model
  pathnet-fer evaluate --dataset fer2013 --set 'datasets.fer2013.splits=[test]'
  pathnet-fer evaluate runs/demo/models/fer2013-to-ckplus48/final.pt --dataset crema-d-sample
  pathnet-fer evaluate model.pt --dataset crema-d --keep-neutral --out eval/crema
  pathnet-fer evaluate model.pt --dataset jaffe --config runs/demo/config.yaml
"""


def register_evaluate(sub: argparse._SubParsersAction) -> None:
    from pathnet_fer.yaml_config.options import add_set_option

    p = sub.add_parser(
        "evaluate",
        help="score a trained model file on every face of a labelled dataset",
        description=(
            "Run a model file on every face crop of a labelled dataset and report accuracy "
            "per frame and per clip (majority vote and mean-probability vote), a per-clip "
            "table, the collapse check and calibration."
        ),
        epilog=EVALUATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        metavar="MODEL",
        help="model file (e.g. <run>/models/*/*.pt; default: the shipped pretrained model)",
    )
    p.add_argument("--dataset", required=True, metavar="NAME", help="the dataset to score on")
    p.add_argument("--config", default=None, metavar="CFG", help="experiment config defining NAME")
    p.add_argument("--root", default=None, metavar="DIR", help="the dataset's folder")
    p.add_argument(
        "--keep-neutral",
        action="store_true",
        help="keep neutral clips as a class (a model without neutral gets them wrong)",
    )
    add_set_option(p, "faces.margin=0.1")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="folder for the CSVs (default: evaluation_<model>_<dataset>; overwritten)",
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default %(default)s)")
    p.add_argument(
        "--batch-size", type=int, default=256, metavar="B", help="crops per network call"
    )
    p.add_argument(
        "--workers", type=int, default=None, help="processes cropping faces (default: all cores)"
    )
    add_head_option(p, "each in turn (all: every head, then the combination)")
    add_mirror_option(p)
    add_prior_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar while cropping")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from pathnet_fer.data.registry import UnknownDatasetError
    from pathnet_fer.datasets.loading import DataMissingError
    from pathnet_fer.formats.loaded_model import ModelFileError
    from pathnet_fer.names import slug
    from pathnet_fer.predict.evaluate import EvaluationError, evaluate_heads
    from pathnet_fer.predict.outputs import OutputError, check_writable
    from pathnet_fer.yaml_config.errors import ConfigError

    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return EXIT_FAILED
    model_path = model_or_shipped(args.model)
    if model_path is None:
        return EXIT_FAILED
    out = Path(args.out or f"evaluation_{slug(Path(model_path).stem)}_{slug(args.dataset)}")
    try:  # a read-only --out is refused now, not after every face is cropped and scored
        check_writable([("--out", out / "summary.md")])
    except OutputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    try:
        device = resolve_device(args.device)
        results = evaluate_heads(
            model_path,
            args.dataset,
            None if args.head == "all" else [args.head],
            config=args.config,
            overrides=args.overrides,
            root=args.root,
            keep_neutral=args.keep_neutral,
            device=device,
            batch_size=args.batch_size,
            workers=args.workers,
            progress=not args.quiet,
            mirror=mirror_choice(args.mirror),
            prior=args.prior,
        )
    except ModelFileError as error:
        print(f"error: model refused: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (EvaluationError, ConfigError, DataMissingError, UnknownDatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (FileNotFoundError, ValueError) as error:  # e.g. a dataset that gave no face
        if os.environ.get("PATHNET_FER_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    several = len(results) > 1
    for head, result in results.items():
        where = out / slug(head) if several else out
        try:
            paths = result.write(where)
        except OSError as error:
            print(f"error: cannot write the outputs: {error}", file=sys.stderr)
            return EXIT_FAILED
        if several:
            print(f"# head {head}\n")
        print(result.markdown())
        print(
            f"per-frame -> {paths['frames']}, per-clip -> {paths['clips']}, "
            f"summary -> {paths['summary']}"
        )
    if several:
        print("\n" + heads_table(results))
    return EXIT_OK


def heads_table(results: dict[str, Any]) -> str:
    """One line per head: frame accuracy, clip accuracy, top share, confidence."""
    lines = ["| head | frames | frame accuracy | clip accuracy (majority) | top share "
             "| mean confidence |", "|---|---|---|---|---|---|"]  # fmt: skip
    for head, r in results.items():
        frame = r.frame
        clip = r.votes["majority"].clip
        lines.append(
            f"| {head} | {len(r.frames)} | {frame['accuracy']:.3f} | "
            f"{clip.get('accuracy', float('nan')):.3f} | {frame['top_share']:.3f} | "
            f"{r.frames['p_max'].mean():.3f} |"
        )
    return "\n".join(lines)
