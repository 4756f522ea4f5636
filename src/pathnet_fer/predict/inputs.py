"""Turn the user's INPUT arguments (files, folders, globs) into a list of media files."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pathnet_fer.faces.video import IMAGE_SUFFIXES

VIDEO_SUFFIXES = frozenset(
    {
        ".mp4",
        ".mov",
        ".avi",
        ".mkv",
        ".flv",
        ".webm",
        ".m4v",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".3gp",
        ".ts",
        ".gif",  # animated or not: decoded as a video (one frame for a still GIF)
    }
)
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES
_GLOB_CHARS = set("*?[")


def is_media(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_SUFFIXES


@dataclass
class ExpandedInputs:
    """Media files to process (in order, no duplicates) and arguments that named nothing."""

    files: list[Path] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (argument, reason)


def expand_inputs(arguments: Iterable[str | Path]) -> ExpandedInputs:
    """Files as given; folders searched recursively for video/image files; globs expanded.

    A file named explicitly is kept whatever its suffix (the decoder decides); inside
    folders and globs only known video/image suffixes are taken, so a dataset's CSVs and
    licences are not reported as broken videos. Order: arguments in order, each folder or
    glob sorted by path.
    """
    result = ExpandedInputs()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            result.files.append(resolved)

    for argument in arguments:
        text = str(argument)
        path = Path(text).expanduser()
        if path.is_file():
            add(path)
        elif path.is_dir():
            found, unreadable = _walk_media(path)
            for folder, reason in unreadable:  # never skipped silently
                result.problems.append((str(folder), f"folder cannot be read: {reason}"))
            if not found and not unreadable:
                result.problems.append((text, "folder holds no video or image files"))
            for p in found:
                add(p)
        elif _GLOB_CHARS & set(text):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            found = [p for p in matches if p.is_file() and is_media(p)]
            if not found:
                result.problems.append((text, "pattern matches no video or image files"))
            for p in found:
                add(p)
        else:
            result.problems.append((text, "no such file or folder"))
    return result


def _walk_media(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Media files under ``folder`` (sorted) and the sub-folders that could not be read."""
    import os

    unreadable: list[tuple[Path, str]] = []

    def failed(error: OSError) -> None:
        unreadable.append((Path(error.filename or folder), error.strerror or str(error)))

    found = []
    for top, _dirs, files in os.walk(folder, onerror=failed, followlinks=False):
        for name in files:
            p = Path(top) / name
            if is_media(p) and p.is_file():
                found.append(p)
    return sorted(found), unreadable
