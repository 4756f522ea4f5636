"""CK+48: the last 3 frames of each labelled CK+ sequence, face-cropped 48x48 grey PNG."""

from __future__ import annotations

import re
from pathlib import Path

from pathnet_fer.data.adapter import DatasetAdapter, ScanBuilder, list_dir, walk_files
from pathnet_fer.data.emotions import BASIC_EMOTIONS

_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)$", re.IGNORECASE)


class CKPlus48Adapter(DatasetAdapter):
    """``<class>/S<subj>_<seq>_<frame>.png``; the emotion is the class folder.

    The 3 frames of one sequence share a ``clip`` (``S010_004``) so that clip-level
    metrics vote over them and folds never split a sequence; ``path`` is the unique key.
    """

    name = "ckplus48"
    media = "image"
    pre_cropped = True
    description = "CK+48: last 3 frames of 327 CK+ sequences, 48x48 grey face crops, 118 subjects"
    layout = "<root>/<class>/S<subject>_<sequence>_<frame>.png (class = anger, contempt, ...)"
    default_folder = "ckplus48"
    emotions = BASIC_EMOTIONS  # CK+48 ships no neutral folder; contempt is always excluded
    unique_clips = False

    def _scan(self, root: Path, out: ScanBuilder) -> None:
        files, folders = list_dir(root, out)
        for item in files:
            out.skip(item, "file outside a class folder")
        for folder in folders:
            label = folder.name
            for path in walk_files(folder, out):
                if out.stray(path):
                    continue
                if path.parent != folder:
                    out.skip(path, f"nested below class folder {label!r}")
                    continue
                match = _NAME.match(path.stem)
                if not match:
                    out.skip(path, "file name does not match S<subject>_<sequence>_<frame>")
                    continue
                subject = match.group(1).upper()
                clip = f"{subject}_{match.group(2)}"
                out.add(path, subject=subject, clip=clip, label=label)
