"""CLI sub-commands of the ``faces`` stage: ``pathnet-fer preprocess``."""

from __future__ import annotations

import argparse
import json
import sys

from pathnet_fer.faces.settings import COLOURS, MULTI_FACE_POLICIES, FaceSettings


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``preprocess``: dataset folder -> cached face crops, with a summary."""
    defaults = FaceSettings()
    parser = sub.add_parser(
        "preprocess",
        help="detect, crop and cache the faces of a dataset",
        description=(
            "Decode every frame (or every k-th), find the face with OpenCV's Haar cascade "
            "(previous-face fallback when a frame has no face or several), crop, resize and "
            "cache. A second run with the same settings reads the cache."
        ),
    )
    parser.add_argument(
        "--dataset", required=True, help="adapter name (see `pathnet-fer datasets`)"
    )
    parser.add_argument("--root", required=True, help="the dataset's folder")
    parser.add_argument(
        "--cache",
        default=None,
        help="cache folder (default: $PATHNET_FER_CACHE or ~/.cache/pathnet-fer)",
    )
    parser.add_argument("--size", type=int, default=defaults.size, help="crop side in pixels")
    parser.add_argument("--colour", "--color", choices=COLOURS, default=defaults.colour)
    parser.add_argument(
        "--margin",
        type=float,
        default=defaults.margin,
        help="fraction of the face box added on each side (default %(default)s)",
    )
    parser.add_argument(
        "--every",
        type=int,
        default=defaults.every,
        help="keep every k-th frame (default: every frame)",
    )
    parser.add_argument(
        "--detect",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the face detector (default: off for pre-cropped datasets "
        "such as CK+48 and FER-2013, on otherwise)",
    )
    parser.add_argument(
        "--multi-face",
        choices=MULTI_FACE_POLICIES,
        default=defaults.multi_face,
        help="several faces in a frame: 'previous' reuses the previous face "
        "(the paper), 'nearest' takes the one closest to it",
    )
    parser.add_argument(
        "--detect-side",
        type=int,
        default=defaults.detect_side,
        help="detect on frames downscaled to this longer side (0 = full size)",
    )
    parser.add_argument(
        "--recheck-every",
        type=int,
        default=defaults.recheck_every,
        help="while following a face, search near it and the full frame every K frames "
        "(and whenever the nearby search is unsure); 1 = full frame every frame",
    )
    parser.add_argument(
        "--max-gap",
        type=int,
        default=defaults.max_gap,
        help="drop frames more than this many frames away from a detected face "
        "(default 0: no limit, the paper's previous-face rule)",
    )
    parser.add_argument(
        "--blur",
        type=float,
        default=defaults.blur,
        help="Gaussian sigma in pixels of the final crop applied to every crop "
        "(default 0: off; optional, no measured benefit on the current data: docs/faces.md)",
    )
    parser.add_argument("--keep-neutral", action="store_true", help="keep neutral as a 7th class")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run_preprocess)


def run_preprocess(args: argparse.Namespace) -> int:
    from pathnet_fer.faces.preprocess import preprocess_dataset
    from pathnet_fer.faces.summary import format_summary, summarise

    try:
        settings = FaceSettings(
            size=args.size,
            colour=args.colour,
            margin=args.margin,
            every=args.every,
            detect=args.detect,
            multi_face=args.multi_face,
            detect_side=args.detect_side,
            recheck_every=args.recheck_every,
            max_gap=args.max_gap,
            blur=args.blur,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        dataset = preprocess_dataset(
            args.dataset,
            args.root,
            settings=settings,
            cache_dir=args.cache,
            workers=args.workers,
            keep_neutral=args.keep_neutral,
            progress=not args.no_progress,
        )
    except (KeyError, FileNotFoundError, NotADirectoryError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summarise(dataset), indent=2))
    else:
        print(format_summary(dataset))
    return 0 if (dataset.manifest["status"] == "ok").any() else 1
