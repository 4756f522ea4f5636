"""SAVEE: 4 male speakers x 120 utterances, audio-visual clips (AVI)."""

from __future__ import annotations

import re
from pathlib import Path

from pathnet_fer.data.adapter import DatasetAdapter, ScanBuilder, list_dir, walk_files

# Two-letter codes first so that "sa3" is sadness, never "s" + "a3".
_CODES = {
    "sa": "sadness",
    "su": "surprise",
    "a": "anger",
    "d": "disgust",
    "f": "fear",
    "h": "happiness",
    "n": "neutral",
}
_NAME = re.compile(r"^(sa|su|a|d|f|h|n)(\d+)$", re.IGNORECASE)
_ANY_CODE = re.compile(r"^([A-Za-z]+)[\s_-]*(\d+)$")


class SaveeAdapter(DatasetAdapter):
    """``AudioVisualClip/<speaker>/<code><n>.avi``; subject = speaker, clip = speaker_code<n>.

    ``root`` may be the SAVEE folder holding ``AudioVisualClip/`` or that folder itself.
    """

    name = "savee"
    media = "video"
    pre_cropped = False
    description = "SAVEE: 4 male speakers (DC JE JK KL), 480 audio-visual clips, 7 emotions"
    layout = "<root>/AudioVisualClip/<speaker>/<code><n>.avi (code in a d f h n sa su)"

    def _scan(self, root: Path, out: ScanBuilder) -> None:
        clips = root / "AudioVisualClip"
        if not clips.is_dir():
            if root.name.lower() != "audiovisualclip":
                out.warn(f"no AudioVisualClip/ folder under {root}: scanning {root} itself")
            clips = root
        files, folders = list_dir(clips, out)
        for item in files:
            out.skip(item, "file outside a speaker folder")
        for folder in folders:
            speaker = folder.name
            for path in walk_files(folder, out):
                if out.stray(path):
                    continue
                match = _NAME.match(path.stem)
                if not match:
                    other = _ANY_CODE.match(path.stem)
                    if other:
                        out.skip(
                            path,
                            f"unknown label {other.group(1)!r} (SAVEE codes: {' '.join(_CODES)})",
                        )
                    else:
                        out.skip(path, "file name does not match <code><n> (e.g. sa3.avi)")
                    continue
                code, number = match.group(1).lower(), int(match.group(2))
                out.add(
                    path,
                    subject=speaker,
                    clip=f"{speaker}_{code}{number:02d}",
                    label=code,
                    emotion_label=_CODES[code],
                )
