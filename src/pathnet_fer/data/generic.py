"""A generic ``<root>/<emotion>/[<subject>/]...`` layout for your own images or videos."""

from __future__ import annotations

from pathlib import Path

from pathnet_fer.data.adapter import DatasetAdapter, ScanBuilder, list_dir, media_of, walk_files


class GenericAdapter(DatasetAdapter):
    """``<root>/<emotion>/<file>`` or ``<root>/<emotion>/<subject>/.../<file>``.

    - emotion: the top folder name (any label ``canonical_emotion`` knows: ``angry``,
      ``happiness``, ``sad``, ``neutral``, ...); an unknown folder name skips its files;
    - media: per file from its extension (images and videos may be mixed); other files
      are skipped;
    - subject: the folder right below the emotion folder; a file directly in the emotion
      folder is its own subject (its stem), so subject folds then split per file;
    - clip: the path below ``root`` without extension (``anger/s01/take2``), unique;
    - a class folder with no image or video is listed in ``skipped`` (the folder's path)
      and in ``ScanResult.warnings``.
    """

    name = "generic"
    media = "mixed"
    pre_cropped = False
    description = "Your own data: <root>/<emotion>/[<subject>/]* images or videos"
    layout = "<root>/<emotion>/[<subject>/]<file>.{jpg,png,...,mp4,avi,...}"
    emotions = ()  # unknown: empty class folders are reported instead

    def _scan(self, root: Path, out: ScanBuilder) -> None:
        files, folders = list_dir(root, out)
        for item in files:
            out.skip(item, "file outside an emotion folder")
        for class_dir in folders:
            found = 0
            for path in walk_files(class_dir, out):
                if out.stray(path):
                    continue
                found += 1
                below = path.relative_to(class_dir).parts
                subject = below[0] if len(below) > 1 else path.stem
                clip = path.relative_to(root).with_suffix("").as_posix()
                out.add(
                    path, subject=subject, clip=clip, label=class_dir.name, media=media_of(path)
                )
            if not found:
                reason = f"empty class folder {class_dir.name!r}: no image or video inside"
                out.skip(class_dir, reason)
                out.warn(f"{reason} ({class_dir})")
