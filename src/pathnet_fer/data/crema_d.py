"""CREMA-D: 7,442 clips of 91 actors speaking 12 sentences in 6 emotions (no surprise)."""

from __future__ import annotations

import re
from pathlib import Path

from pathnet_fer.data.adapter import DatasetAdapter, ScanBuilder, walk_files

# <actor>_<sentence>_<EMO>_<level>, e.g. 1001_DFA_ANG_XX
_NAME = re.compile(r"^(\d+)_([A-Za-z]+)_([A-Za-z]+)_([A-Za-z0-9]+)$")
CODES = {  # CREMA-D emotion code -> canonical emotion (no surprise clips)
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happiness",
    "SAD": "sadness",
    "NEU": "neutral",
}


class CremaDAdapter(DatasetAdapter):
    """``VideoFlash/<actor>_<sentence>_<EMO>_<level>.flv``; subject = actor, clip = stem.

    ``root`` may be the dataset folder (holding ``VideoFlash/`` and the metadata CSVs,
    which are not samples and are ignored) or the ``VideoFlash`` folder itself.
    """

    name = "crema-d"
    media = "video"
    pre_cropped = False
    description = "CREMA-D: 91 actors, 12 sentences, 6 emotions (no surprise), 480x360 FLV"
    layout = (
        "<root>/VideoFlash/<actor>_<sentence>_<EMO>_<level>.flv (EMO in ANG DIS FEA HAP NEU SAD)"
    )
    default_folder = "crema-d-sample"
    emotions = ("anger", "disgust", "fear", "happiness", "sadness", "neutral")

    def _scan(self, root: Path, out: ScanBuilder) -> None:
        videos = root / "VideoFlash"
        if not videos.is_dir():
            if root.name.lower() != "videoflash":
                out.warn(f"no VideoFlash/ folder under {root}: scanning {root} itself")
            videos = root
        for path in walk_files(videos, out):
            if out.stray(path):
                continue
            match = _NAME.match(path.stem)
            if not match:
                out.skip(path, "file name does not match <actor>_<sentence>_<EMO>_<level>")
                continue
            actor, code = match.group(1), match.group(3).upper()
            if code not in CODES:
                out.skip(path, f"unknown label {code!r} (CREMA-D codes: {' '.join(CODES)})")
                continue
            out.add(path, subject=actor, clip=path.stem, label=code, emotion_label=CODES[code])
