"""FER+ (FERPlus): FER-2013's faces relabelled by 10 annotators each, as vote counts.

``<root>/FER2013Train|FER2013Valid|FER2013Test/`` hold the PNG faces and a header-less
``label.csv``: file name, face box, then votes for neutral, happiness, surprise, sadness,
anger, disgust, fear, contempt, unknown, NF (not a face). Splits: ``train`` = FER-2013's
Training images, ``valid`` = its PublicTest, ``test`` = its PrivateTest. FER-2013's own
``test`` folder is PublicTest + PrivateTest, so never train on FER+ ``valid`` or
``test`` while FER-2013 test is held out.

A face's label is its majority vote among the 8 emotions (ties to the first in that
order); a face most annotators called unknown or not a face is skipped with that reason.
``votes(root)`` gives the vote counts per emotion, the soft targets of
``datasets.NAME.soft_labels`` (docs/data.md).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from pathnet_fer.data.adapter import DatasetAdapter, ScanBuilder, list_dir
from pathnet_fer.data.emotions import canonical_emotion

SPLITS = {"FER2013Train": "train", "FER2013Valid": "valid", "FER2013Test": "test"}
VOTE_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "not_a_face",
)
EMOTION_VOTES = VOTE_COLUMNS[:8]


class VoteFileError(ValueError):
    """A ``label.csv`` row that cannot be read as a file name, a box and 10 vote counts."""


def read_votes(label_csv: Path) -> pd.DataFrame:
    """One row per listed file: ``file`` and the 10 vote counts (ints), in file order."""
    rows = []
    with open(label_csv, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), 1):
            if not row:
                continue
            if len(row) != 12:
                raise VoteFileError(
                    f"{label_csv}, line {number}: expected a file name, a box and 10 vote "
                    f"counts (12 fields), got {len(row)}"
                )
            try:
                counts = [int(v) for v in row[2:]]
            except ValueError:
                raise VoteFileError(
                    f"{label_csv}, line {number}: vote counts must be integers"
                ) from None
            if min(counts) < 0:
                raise VoteFileError(f"{label_csv}, line {number}: a negative vote count")
            rows.append([row[0], *counts])
    return pd.DataFrame(rows, columns=["file", *VOTE_COLUMNS])


class FerPlusAdapter(DatasetAdapter):
    """``<FER2013Train|Valid|Test>/<name>.png`` + ``label.csv`` votes; ``split`` from the folder.

    Every face is its own subject (``clip = subject = <split>/<stem>``), as in FER-2013:
    use the shipped split (``folds: fixed``), not subject folds.
    """

    name = "ferplus"
    media = "image"
    pre_cropped = True
    description = "FER+: FER-2013's faces with 10 annotators' votes each (soft labels)"
    layout = "<root>/FER2013Train|FER2013Valid|FER2013Test/<name>.png + label.csv in each"
    default_folder = "ferplus"

    def _scan(self, root: Path, out: ScanBuilder) -> None:
        files, tops = list_dir(root, out)
        for item in files:
            if item.suffix.lower() not in (".md", ".txt"):
                out.skip(item, "file outside a FER2013Train/Valid/Test folder")
        for top in tops:
            split = SPLITS.get(top.name)
            if split is None:
                out.skip(top, f"folder not one of {sorted(SPLITS)}")
                continue
            self._scan_split(top, split, out)

    def _scan_split(self, folder: Path, split: str, out: ScanBuilder) -> None:
        label_csv = folder / "label.csv"
        if not label_csv.is_file():
            out.skip(folder, "no label.csv: the votes of this split are missing")
            return
        votes = read_votes(label_csv)
        listed = set(votes["file"])
        files, _ = list_dir(folder, out)
        for item in files:
            if item.name != "label.csv" and item.name not in listed:
                out.skip(item, "not listed in label.csv")
        for row in votes.itertuples(index=False):
            path = folder / row.file
            if not path.is_file():
                out.skip(path, "listed in label.csv but missing")
                continue
            counts = np.array([getattr(row, c) for c in VOTE_COLUMNS])
            emotion_votes = counts[:8]
            if emotion_votes.sum() <= counts[8:].sum():
                out.skip(path, "most annotators voted unknown or not a face")
                continue
            majority = EMOTION_VOTES[int(emotion_votes.argmax())]
            clip = f"{split}/{Path(row.file).stem}"
            out.add(path, subject=clip, clip=clip, label=majority, split=split)

    def votes(self, root: Path) -> pd.DataFrame:
        """Emotion vote counts indexed by clip (``<split>/<stem>``), columns the canonical
        emotion names (contempt dropped: outside the label space)."""
        parts = []
        for folder, split in SPLITS.items():
            label_csv = Path(root) / folder / "label.csv"
            if not label_csv.is_file():
                continue
            table = read_votes(label_csv)
            table.index = [f"{split}/{Path(f).stem}" for f in table["file"]]
            parts.append(table)
        if not parts:
            raise FileNotFoundError(f"no FER+ label.csv under {root}")
        table = pd.concat(parts)
        kept = {c: canonical_emotion(c) for c in EMOTION_VOTES}
        return table[[c for c, e in kept.items() if e]].rename(columns=kept)
