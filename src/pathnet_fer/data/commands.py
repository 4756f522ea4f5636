"""CLI sub-commands of the ``data`` stage: ``pathnet-fer datasets [inspect NAME --root DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pathnet_fer.data.adapter import DatasetRootError
from pathnet_fer.data.registry import ADAPTERS, UnknownDatasetError, get_adapter, scan_dataset
from pathnet_fer.paths import data_root


def _list(args: argparse.Namespace) -> int:
    """Print every adapter: name, media, pre-cropped default, description, layout."""
    rows = [("name", "media", "pre-cropped", "default root", "description")]
    for adapter in ADAPTERS.values():
        default = str(data_root() / adapter.default_folder) if adapter.default_folder else "-"
        rows.append(
            (
                adapter.name,
                adapter.media,
                "yes" if adapter.pre_cropped else "no",
                default,
                adapter.description,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    if args.layouts:
        print()
        for adapter in ADAPTERS.values():
            print(f"{adapter.name}: {adapter.layout}")
    else:
        print(
            "\n`pathnet-fer datasets --layouts` shows each folder layout; "
            "`pathnet-fer datasets inspect NAME --root DIR` scans one."
        )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    """Scan a dataset folder and print counts per emotion and subject, and every skip reason."""
    try:
        adapter = get_adapter(args.name)
    except UnknownDatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = scan_dataset(adapter.name, args.root, keep_neutral=args.keep_neutral)
    except DatasetRootError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result.summary(max_subjects=args.max_subjects, max_skipped=args.max_skipped))
    for target, frame in ((args.samples_csv, result.samples), (args.skipped_csv, result.skipped)):
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(target, index=False)
            print(f"wrote {len(frame)} rows to {target}")
    return 0 if len(result) else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``datasets`` (list adapters) and ``datasets inspect NAME --root DIR``."""
    parser = sub.add_parser(
        "datasets",
        help="list the dataset adapters, or inspect one dataset folder",
        description="List the dataset adapters (default), or `inspect` a dataset folder.",
    )
    parser.add_argument("--layouts", action="store_true", help="also print each folder layout")
    parser.set_defaults(func=_list)
    actions = parser.add_subparsers(dest="datasets_command", metavar="ACTION")
    inspect = actions.add_parser(
        "inspect",
        help="scan a dataset folder: counts per emotion and subject, skipped files and why",
        description="Scan a dataset folder with its adapter and report what it found.",
    )
    inspect.add_argument("name", help=f"adapter name: {', '.join(ADAPTERS)}")
    inspect.add_argument(
        "--root",
        type=Path,
        default=None,
        help="dataset folder (default: the shared data copy, if any)",
    )
    inspect.add_argument(
        "--keep-neutral",
        action="store_true",
        help="keep neutral as a 7th class (contempt/calm stay excluded)",
    )
    inspect.add_argument(
        "--max-subjects",
        type=int,
        default=40,
        help="print the subject x emotion table up to this many subjects",
    )
    inspect.add_argument(
        "--max-skipped",
        type=int,
        default=10,
        help="list this many skipped files (all reasons are always counted)",
    )
    inspect.add_argument(
        "--samples-csv", type=Path, default=None, help="also write the samples table to this CSV"
    )
    inspect.add_argument(
        "--skipped-csv",
        type=Path,
        default=None,
        help="also write the skipped table (path, reason) to this CSV",
    )
    inspect.set_defaults(func=_inspect)
