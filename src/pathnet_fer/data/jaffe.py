"""JAFFE: 213 full-face 256x256 grey TIFF of 10 Japanese female posers."""

from __future__ import annotations

import re
from pathlib import Path

from pathnet_fer.data.adapter import DatasetAdapter, ScanBuilder, walk_files

# <poser>.<EXPR><n>.<id>, e.g. KA.AN1.39
_NAME = re.compile(r"^([A-Za-z]+)\.([A-Za-z]+)(\d+)\.(\d+)$")
_CODES = {
    "AN": "anger",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happiness",
    "SA": "sadness",
    "SU": "surprise",
    "NE": "neutral",
}


class JaffeAdapter(DatasetAdapter):
    """``<poser>.<EXPR><n>.<id>.tiff``; subject = poser, clip = file stem.

    The images are full faces with background, so they go through the face detector
    (``pre_cropped=False``).
    """

    name = "jaffe"
    media = "image"
    pre_cropped = False
    description = "JAFFE: 213 posed 256x256 grey images of 10 Japanese female posers"
    layout = "<root>/<poser>.<EXPR><n>.<id>.tiff (EXPR in AN DI FE HA NE SA SU)"
    default_folder = "jaffe"

    def _scan(self, root: Path, out: ScanBuilder) -> None:
        for path in walk_files(root, out):
            if out.stray(path):
                continue
            match = _NAME.match(path.stem)
            if not match:
                out.skip(path, "file name does not match <poser>.<EXPR><n>.<id>")
                continue
            poser, code = match.group(1).upper(), match.group(2).upper()
            if code not in _CODES:
                out.skip(path, f"unknown label {code!r} (JAFFE codes: {' '.join(_CODES)})")
                continue
            out.add(path, subject=poser, clip=path.stem, label=code, emotion_label=_CODES[code])
