"""The adapter contract: a dataset folder on disk -> a ``ScanResult`` (samples + skipped).

Every adapter parses its own file-name convention and hands each file to a
``ScanBuilder``, which owns the rules shared by all datasets (label mapping, neutral /
contempt / calm exclusion, unknown labels, duplicates, stray files) so that every dataset
reports what it left out, and why, in the same words.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pathnet_fer.data.emotions import BASIC_EMOTIONS, NEUTRAL, canonical_emotion, class_names

SAMPLE_COLUMNS: tuple[str, ...] = (
    "path",
    "dataset",
    "subject",
    "clip",
    "emotion",
    "label",
    "media",
    "split",
)
SKIPPED_COLUMNS: tuple[str, ...] = ("path", "reason")

VIDEO_EXTENSIONS = frozenset(
    {".avi", ".mp4", ".flv", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp"}
)
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".pnm", ".webp"}
)
MEDIA_EXTENSIONS = {"video": VIDEO_EXTENSIONS, "image": IMAGE_EXTENSIONS}


# Endings of the reasons for files left out by the label space rather than by a problem.
NEUTRAL_EXCLUDED = "(keep_neutral=False)"
ALWAYS_EXCLUDED = "(always excluded)"


class DatasetRootError(FileNotFoundError):
    """The ``--root`` given for a dataset does not exist or is not a folder."""


def media_of(path: Path) -> str | None:
    """``"video"`` / ``"image"`` from the file extension (case-insensitive), else None."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return None


def _ordered_counts(values: pd.Series, order: tuple[str, ...] = ()) -> pd.Series:
    """Value counts with a known order first (e.g. class order), the rest sorted by name."""
    counts = values.value_counts()
    known = [k for k in order if k in counts.index]
    rest = sorted((k for k in counts.index if k not in order), key=natural_key)
    return counts.reindex(known + rest).astype(int)


@dataclass
class ScanResult:
    """What a scan found: ``samples`` (one row per clip/image) and ``skipped`` (path, reason).

    ``warnings`` holds dataset-level problems that are not one file, e.g. a class with no
    samples at all; they are also printed by ``summary()``.
    """

    dataset: str
    root: Path
    keep_neutral: bool
    samples: pd.DataFrame
    skipped: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    # Emotions the dataset is known to contain (empty = unknown, e.g. the generic layout).
    dataset_emotions: tuple[str, ...] = ()

    @property
    def class_names(self) -> tuple[str, ...]:
        """The label space of this scan: the 6 basic emotions, then neutral if kept."""
        return class_names(self.keep_neutral)

    def __len__(self) -> int:
        return len(self.samples)

    def counts_by(self, column: str) -> pd.Series:
        """Number of samples per value of ``column`` (emotion in class order, others sorted)."""
        if column not in self.samples.columns:
            raise KeyError(f"no column {column!r}; columns are {list(self.samples.columns)}")
        order = self.class_names if column == "emotion" else ()
        return _ordered_counts(self.samples[column], order).rename("count")

    def crosstab(self, rows: str = "subject", columns: str = "emotion") -> pd.DataFrame:
        """Sample counts per ``rows`` x ``columns`` (default subject x emotion), with totals."""
        table = pd.crosstab(self.samples[rows], self.samples[columns])
        table = table.reindex(sorted(table.index, key=natural_key))
        if columns == "emotion":
            table = table.reindex(columns=[c for c in self.class_names if c in table.columns])
        table["total"] = table.sum(axis=1)
        return table

    def skip_reasons(self) -> pd.Series:
        """Number of skipped files per reason, most frequent first."""
        return self.skipped["reason"].value_counts().rename("count")

    def excluded(self) -> pd.Series:
        """Boolean mask over ``skipped``: True where a file was left out by the label space
        (neutral without ``keep_neutral``, contempt, calm), False for a problem to look at."""
        reasons = self.skipped["reason"].astype(str)
        return reasons.str.endswith(NEUTRAL_EXCLUDED) | reasons.str.endswith(ALWAYS_EXCLUDED)

    def problems(self) -> pd.DataFrame:
        """Skipped files that were not merely excluded by label: stray files, unknown labels,
        bad names, duplicates, unreadable folders."""
        return self.skipped[~self.excluded()]

    def summary(self, max_subjects: int = 40, max_skipped: int = 10) -> str:
        """A human-readable report: counts per emotion and subject, skips and warnings."""
        n_clips = self.samples["clip"].nunique()
        clips = f"{n_clips} clips, " if n_clips != len(self.samples) else ""
        lines = [
            f"dataset {self.dataset}: {len(self.samples)} samples "
            f"({', '.join(f'{k} {v}' for k, v in self.counts_by('media').items()) or 'none'}), "
            f"{clips}{self.samples['subject'].nunique()} subject(s); {len(self.skipped)} skipped "
            f"({int(self.excluded().sum())} excluded by label, {len(self.problems())} problems)",
            f"root {self.root}; classes: {', '.join(self.class_names)}",
            "",
            "per emotion:",
        ]
        emotions = self.counts_by("emotion").reindex(self.class_names, fill_value=0)
        for name, count in emotions.items():
            absent = self.dataset_emotions and name not in self.dataset_emotions
            note = f"  (not in {self.dataset})" if absent else ""
            lines.append(f"  {name:<10} {count:>7}{note}")
        if self.samples["split"].ne("").any():
            lines += ["", "per split x emotion:"]
            lines += ["  " + s for s in self.crosstab("split").to_string().splitlines()]
        subjects = self.samples["subject"].nunique()
        if subjects:
            lines.append("")
            if subjects <= max_subjects:
                lines.append("per subject x emotion:")
                lines += ["  " + s for s in self.crosstab("subject").to_string().splitlines()]
            else:
                per = self.counts_by("subject")
                lines.append(
                    f"per subject: {subjects} subjects, samples per subject "
                    f"min {per.min()} / median {per.median():g} / max {per.max()} "
                    f"(table omitted above {max_subjects} subjects)"
                )
        if len(self.skipped):
            lines += ["", "skipped, by reason:"]
            for reason, count in self.skip_reasons().items():
                lines.append(f"  {count:>6}  {reason}")
            # problems first: they are what a user has to act on
            order = pd.concat([self.problems(), self.skipped[self.excluded()]])
            lines += ["", f"skipped files (first {min(max_skipped, len(order))}, problems first):"]
            for row in order.head(max_skipped).itertuples():
                lines.append(f"  {row.path}: {row.reason}")
        if self.warnings:
            lines += ["", "warnings:"] + [f"  {w}" for w in self.warnings]
        return "\n".join(lines)


class ScanBuilder:
    """Collects samples and skips for one scan and applies the shared labelling rules."""

    def __init__(
        self, adapter: DatasetAdapter, root: Path, keep_neutral: bool, unique_clips: bool = True
    ) -> None:
        self.adapter = adapter
        self.root = root
        self.keep_neutral = keep_neutral
        self.unique_clips = unique_clips
        self._rows: list[tuple[str, ...]] = []
        self._skips: list[tuple[str, str]] = []
        self._clips: dict[str, str] = {}
        self.warnings: list[str] = []

    def skip(self, path: Path | str, reason: str) -> None:
        """Record a file (or folder) that is not a sample, with a reason a person can act on."""
        self._skips.append((str(path), reason))

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def stray(self, path: Path, media: str | None = None) -> bool:
        """Skip ``path`` when it is not of the expected media kind; True if it was skipped."""
        wanted = media or self.adapter.media
        found = media_of(path)
        if wanted in MEDIA_EXTENSIONS and found == wanted:
            return False
        if wanted not in MEDIA_EXTENSIONS and found is not None:
            return False
        kind = {"video": "a video", "image": "an image"}.get(wanted, "an image or video")
        self.skip(path, f"not {kind} file (extension {path.suffix.lower() or 'none'!r})")
        return True

    def add(
        self,
        path: Path,
        *,
        subject: str,
        clip: str,
        label: str,
        emotion_label: str | None = None,
        split: str = "",
        media: str | None = None,
    ) -> bool:
        """Add one sample if its label is in the label space, else record why it is skipped.

        ``label`` is the original label as written in the dataset (kept in the ``label``
        column); ``emotion_label`` is what to map when the original is a code that only the
        adapter understands (e.g. RAVDESS ``"03"`` -> ``"happy"``). Returns True if added.
        """
        key = label if emotion_label is None else emotion_label
        try:
            emotion = canonical_emotion(key)
        except KeyError:
            self.skip(path, f"unknown label {label!r}")
            return False
        shown = repr(label) if key == label else f"{label!r} ({key})"
        if emotion is None:
            self.skip(path, f"label {shown} is not one of the 6 basic emotions {ALWAYS_EXCLUDED}")
            return False
        if emotion == NEUTRAL and not self.keep_neutral:
            self.skip(path, f"label {shown} not in the 6 basic emotions {NEUTRAL_EXCLUDED}")
            return False
        if self.unique_clips:
            if clip in self._clips:
                self.skip(path, f"duplicate clip id {clip!r} (first seen at {self._clips[clip]})")
                return False
            self._clips[clip] = str(path)
        self._rows.append(
            (
                str(path),  # absolute: built from the resolved root
                self.adapter.name,
                str(subject),
                str(clip),
                emotion,
                str(label),
                media or media_of(path) or self.adapter.media,
                split,
            )
        )
        return True

    def result(self) -> ScanResult:
        samples = pd.DataFrame(self._rows, columns=list(SAMPLE_COLUMNS))
        skipped = pd.DataFrame(self._skips, columns=list(SKIPPED_COLUMNS))
        warnings = list(self.warnings)
        if samples.empty:
            warnings.append(
                f"no samples found under {self.root}; expected layout: {self.adapter.layout}"
            )
        else:
            expected = [e for e in self.adapter.emotions if e in class_names(self.keep_neutral)]
            present = set(samples["emotion"])
            missing = [e for e in expected if e not in present]
            if missing:
                warnings.append(f"no samples for class(es) {', '.join(missing)}")
        return ScanResult(
            dataset=self.adapter.name,
            root=self.root,
            keep_neutral=self.keep_neutral,
            samples=samples,
            skipped=skipped,
            warnings=warnings,
            dataset_emotions=tuple(self.adapter.emotions),
        )


class DatasetAdapter(ABC):
    """Turns one dataset's folder layout into a ``ScanResult``.

    Subclasses set the class attributes and implement ``_scan``; ``scan`` validates the
    root and applies the shared rules through a ``ScanBuilder``.
    """

    name: str = ""
    media: str = "video"  # "video" | "image" ("mixed" for the generic layout: see rows)
    pre_cropped: bool = False
    description: str = ""
    layout: str = ""
    # Folder name under the shared data root when the project ships a copy (or None).
    default_folder: str | None = None
    # Emotions (canonical, incl. neutral) the dataset is known to contain: a class listed
    # here with no sample after a scan is reported in ScanResult.warnings.
    emotions: tuple[str, ...] = BASIC_EMOTIONS + (NEUTRAL,)
    # False when several rows legitimately share one clip (CK+48: 3 frames per sequence).
    unique_clips: bool = True

    def scan(self, root: Path | str, keep_neutral: bool = False) -> ScanResult:
        """List the labelled samples under ``root``; never raises for a bad file."""
        root = Path(root).expanduser()
        if not root.exists():
            raise DatasetRootError(
                f"{self.name}: root folder {root} does not exist; expected layout: {self.layout}"
            )
        if not root.is_dir():
            raise DatasetRootError(f"{self.name}: root {root} is not a folder")
        if not os.access(root, os.R_OK | os.X_OK):
            raise DatasetRootError(f"{self.name}: root folder {root} is not readable")
        root = root.resolve()
        out = ScanBuilder(self, root, keep_neutral, unique_clips=self.unique_clips)
        self._scan(root, out)
        return out.result()

    @abstractmethod
    def _scan(self, root: Path, out: ScanBuilder) -> None:
        """Hand every file under ``root`` to ``out.add`` or ``out.skip``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} media={self.media} pre_cropped={self.pre_cropped}>"


def walk_files(root: Path, out: ScanBuilder) -> Iterator[Path]:
    """Every file under ``root`` in sorted, deterministic order (a folder's files, then its
    sub-folders). Symlinked folders are followed once (a link loop is recorded, not
    followed again); unreadable folders and broken links are recorded as skipped.
    Hidden entries (``.DS_Store``) are yielded too, so a scan accounts for every file.
    """
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path) -> Iterator[Path]:
        try:
            stat = folder.stat()
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as err:
            out.skip(folder, f"cannot read folder: {err.strerror or err}")
            return
        if (stat.st_dev, stat.st_ino) in seen:
            out.skip(folder, "folder already scanned through another link (link loop?)")
            return
        seen.add((stat.st_dev, stat.st_ino))
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                subfolders.append(folder / entry.name)
            elif entry.is_symlink() and not os.path.exists(entry.path):
                out.skip(folder / entry.name, "broken symbolic link")
            else:
                yield folder / entry.name
        for sub in subfolders:
            yield from visit(sub)

    yield from visit(root)


def list_dir(folder: Path, out: ScanBuilder) -> tuple[list[Path], list[Path]]:
    """(files, sub-folders) of ``folder``, each sorted by name; an unreadable folder is
    recorded as skipped and reads as empty."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as err:
        out.skip(folder, f"cannot read folder: {err.strerror or err}")
        return [], []
    dirs = [p for p in entries if p.is_dir()]
    files = [p for p in entries if not p.is_dir()]
    return files, dirs


def natural_key(text: str) -> tuple:
    """Sort key that orders ``s2`` before ``s10`` (digit runs compare as numbers)."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower())
        for part in re.split(r"(\d+)", str(text))
        if part
    )
