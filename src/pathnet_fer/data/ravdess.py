"""RAVDESS: 24 actors, speech and song, 8 emotions, 1280x720 MP4 (video modalities only)."""

from __future__ import annotations

import re
from pathlib import Path

from pathnet_fer.data.adapter import DatasetAdapter, ScanBuilder, walk_files

# <modality>-<vocal channel>-<emotion>-<intensity>-<statement>-<repetition>-<actor>
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
_MODALITIES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
_ACTOR_DIR = re.compile(r"^actor[\s_-]*(\d+)$", re.IGNORECASE)


class RavdessAdapter(DatasetAdapter):
    """``Actor_<aa>/<mm>-<vc>-<ee>-<ii>-<ss>-<rr>-<aa>.mp4``; subject = ``Actor_<aa>``.

    Video modalities only: 01 audio-video and 02 video-only. The video-only file is the
    same recording as its audio-video twin without sound, so when both are present the
    video-only one is skipped as a duplicate (keeping both would double-count every
    performance). Audio-only (03) files are skipped. ``label`` is the emotion code
    (``"03"``), clip = file stem.
    """

    name = "ravdess"
    media = "video"
    pre_cropped = False
    description = "RAVDESS: 24 actors, speech + song, 8 emotions (calm excluded), 1280x720 MP4"
    layout = "<root>/Actor_<aa>/<mm>-<vc>-<ee>-<ii>-<ss>-<rr>-<aa>.mp4 (mm 01 AV, 02 video-only)"

    def _scan(self, root: Path, out: ScanBuilder) -> None:
        parsed: list[tuple[Path, re.Match[str]]] = []
        for path in walk_files(root, out):
            if out.stray(path):
                continue
            match = _NAME.match(path.stem)
            if not match:
                out.skip(path, "file name does not match <mm>-<vc>-<ee>-<ii>-<ss>-<rr>-<aa>")
                continue
            parsed.append((path, match))
        # A performance is identified by every field but the modality.
        with_av = {m.group(0)[3:] for _, m in parsed if m.group(1) == "01"}
        for path, match in parsed:
            modality, code, actor = match.group(1), match.group(3), match.group(7)
            if modality not in _MODALITIES:
                out.skip(path, f"unknown modality code {modality!r} (01 AV, 02 video, 03 audio)")
                continue
            if modality == "03":
                out.skip(path, "audio-only file (modality 03): no video")
                continue
            if modality == "02" and match.group(0)[3:] in with_av:
                out.skip(path, f"video-only twin of 01-{match.group(0)[3:]} (same recording)")
                continue
            folder = _ACTOR_DIR.match(path.parent.name)
            if folder and int(folder.group(1)) != int(actor):
                out.skip(
                    path,
                    f"actor {actor} in the file name disagrees with folder {path.parent.name!r}",
                )
                continue
            if code not in _EMOTIONS:
                out.skip(path, f"unknown label {code!r} (RAVDESS emotions 01-08)")
                continue
            out.add(
                path,
                subject=f"Actor_{actor}",
                clip=path.stem,
                label=code,
                emotion_label=_EMOTIONS[code],
            )
