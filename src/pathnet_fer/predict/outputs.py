"""Where ``predict`` writes, checked before anything is read, written or removed.

An output that names an input would destroy it (the CSV is emptied before the first
file is read; an annotated copy is encoded over its own source as it is decoded), so
every output is compared with every input, by inode where the file exists (hard links,
``./x`` and ``x``, symlinks) and by resolved path otherwise. Outputs are also compared
with each other, and their folders are checked for writability up front: a read-only
``--out`` must not fail after the first (possibly hour-long) video.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from pathnet_fer.faces.video import is_image
from pathnet_fer.paths import unwritable_reason


class OutputError(ValueError):
    """An output would overwrite an input or another output, or cannot be written."""


def annotation_target(annotate: str | os.PathLike, media: Path, n_inputs: int) -> Path:
    """Where the annotated copy of ``media`` goes (see ``Predictor.predict_paths``).

    A folder (existing, or a path without suffix) gets ``<stem>_annotated.mp4|png``;
    with several inputs a file path is a template (``<out stem>_<input stem>``); videos
    are always ``.mp4`` and images ``.png``.
    """
    target = Path(annotate)
    suffix = ".png" if is_image(media) else ".mp4"
    if target.is_dir() or not target.suffix:
        return target / f"{media.stem}_annotated{suffix}"
    if n_inputs > 1:
        return target.with_name(f"{target.stem}_{media.stem}{suffix}")
    return target.with_suffix(suffix) if is_image(media) else target


def annotation_targets(annotate: str | os.PathLike, files: Sequence[Path]) -> list[Path]:
    """The annotated copy's path for each of ``files``; two inputs never share one."""
    used: set[Path] = set()
    targets = []
    for media in files:
        target = annotation_target(annotate, media, len(files))
        stem, n = target.stem, 1
        while target in used:  # same name in two folders: never overwrite
            n += 1
            target = target.with_name(f"{stem}_{n}{target.suffix}")
        used.add(target)
        targets.append(target)
    return targets


def _identity(path: Path) -> tuple[str, object]:
    """A key equal for two paths of one file: the inode when it exists, else the path."""
    try:
        info = path.stat()
    except OSError:
        return ("path", path.resolve())
    return ("inode", (info.st_dev, info.st_ino))


def check_outputs(
    files: Iterable[Path],
    outputs: Iterable[tuple[str, Path]],
) -> None:
    """Refuse (``OutputError``, one line) an output that is an input or another output.

    ``outputs``: ``(what, path)`` pairs, ``what`` naming the option in the message
    (``"--out"``, ``"the summary CSV"``, ``"--annotate"``).
    """
    inputs = {_identity(Path(f)): Path(f) for f in files}
    seen: dict[tuple[str, object], tuple[str, Path]] = {}
    for what, path in outputs:
        key = _identity(path)
        if key in inputs:
            raise OutputError(
                f"{what} {path} is the input {inputs[key]}: writing it would destroy the "
                "input; choose another output path (nothing was read or written)"
            )
        if key in seen:
            other, other_path = seen[key]
            raise OutputError(
                f"{what} {path} and {other} {other_path} are the same file: one would "
                "overwrite the other; choose different output paths (nothing was written)"
            )
        seen[key] = (what, path)


def check_writable(outputs: Iterable[tuple[str, Path]]) -> None:
    """Refuse (``OutputError``) an output path that is a folder, or whose folder cannot
    be created or written (``paths.unwritable_reason``). Creates nothing."""
    probed: set[Path] = set()
    for what, path in outputs:
        if path.is_dir():
            raise OutputError(f"{what} {path} is a folder: give a file path")
        if path.exists() and not os.access(path, os.W_OK):
            raise OutputError(f"{what} {path}: the file exists and is not writable")
        if path.parent in probed:
            continue
        reason = unwritable_reason(path.parent)
        if reason:
            raise OutputError(f"{what} {path}: {reason}")
        probed.add(path.parent)
