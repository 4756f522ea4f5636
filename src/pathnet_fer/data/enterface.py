"""eNTERFACE'05: 42-44 subjects reading 5 sentences in each of 6 emotions, 720x576 AVI."""

from __future__ import annotations

import re
from pathlib import Path

from pathnet_fer.data.adapter import DatasetAdapter, ScanBuilder, walk_files
from pathnet_fer.data.emotions import BASIC_EMOTIONS, canonical_emotion

_SEP = r"[\s_.\-]*"
# s<subject>_<code>_<sentence>, tolerant of case and separators: s_23_an_1, S23_AN_1, s23-an-1
_NAME = re.compile(rf"^s{_SEP}(\d+){_SEP}([a-z]+){_SEP}(\d+)$", re.IGNORECASE)
_SUBJECT_DIR = re.compile(rf"^(?:subject|s){_SEP}(\d+)$", re.IGNORECASE)
_SENTENCE_DIR = re.compile(rf"^sentence{_SEP}(\d+)$", re.IGNORECASE)
_CODES = {
    "an": "anger",
    "di": "disgust",
    "fe": "fear",
    "ha": "happiness",
    "sa": "sadness",
    "su": "surprise",
}


def _folder_emotion(name: str) -> str | None:
    """The canonical emotion an eNTERFACE folder name stands for (``anger``), else None."""
    if len(name) < 3:  # a 1-2 letter folder is not an emotion folder in this layout
        return None
    try:
        return canonical_emotion(name)
    except KeyError:
        return None


class EnterfaceAdapter(DatasetAdapter):
    """``subject <s>/<emotion>/sentence <k>/s<s>_<code>_<k>.avi``, tolerant of known quirks.

    Every video below ``root`` is considered, whatever its depth, so a subject without the
    ``sentence <k>`` level or an extra top folder is fine. Rules:

    - emotion: the file-name code (an di fe ha sa su); when an emotion folder above the
      file disagrees with it, the file is skipped (we cannot tell which one is wrong);
    - subject: the nearest ``subject <s>`` folder, else the number in the file name (a
      disagreement keeps the folder and is listed in ``ScanResult.warnings``);
    - clip: ``s<s>_<code>_<k>`` normalised (lower case, ``_``); the sentence number comes
      from the file name, a ``sentence <k>`` folder that disagrees is a warning;
    - two files that normalise to the same clip: the second is skipped as a duplicate.
    """

    name = "enterface"
    media = "video"
    pre_cropped = False
    description = "eNTERFACE'05: 42-44 subjects x 6 emotions x 5 sentences, 720x576 AVI"
    layout = (
        "<root>/subject <s>/<emotion>/sentence <k>/s<s>_<code>_<k>.avi (code an di fe ha sa su)"
    )
    emotions = BASIC_EMOTIONS

    def _scan(self, root: Path, out: ScanBuilder) -> None:
        subject_clash: list[str] = []
        sentence_clash: list[str] = []
        for path in walk_files(root, out):
            if out.stray(path):
                continue
            match = _NAME.match(path.stem.strip())  # "s16_su_3 .avi" occurs
            if not match:
                out.skip(path, "file name does not match s<subject>_<code>_<sentence>")
                continue
            file_subject, code, sentence = (
                int(match.group(1)),
                match.group(2).lower(),
                int(match.group(3)),
            )
            if code not in _CODES:
                out.skip(
                    path, f"unknown label {match.group(2)!r} (eNTERFACE codes: {' '.join(_CODES)})"
                )
                continue
            parts = path.relative_to(root).parts[:-1]
            subject, folder_emotion, folder_sentence = file_subject, None, None
            for part in reversed(parts):  # nearest folder first
                if m := _SUBJECT_DIR.match(part):
                    if int(m.group(1)) != file_subject:
                        subject_clash.append(str(path))
                    subject = int(m.group(1))
                    break
                if m := _SENTENCE_DIR.match(part):
                    folder_sentence = folder_sentence or int(m.group(1))
                elif folder_emotion is None:
                    folder_emotion = _folder_emotion(part)
            if folder_emotion is not None and folder_emotion != _CODES[code]:
                out.skip(
                    path,
                    f"file code {code!r} ({_CODES[code]}) disagrees with its "
                    f"emotion folder ({folder_emotion})",
                )
                continue
            if folder_sentence is not None and folder_sentence != sentence:
                sentence_clash.append(str(path))
            out.add(
                path,
                subject=f"s{subject}",
                clip=f"s{subject}_{code}_{sentence}",
                label=code,
                emotion_label=_CODES[code],
            )
        if subject_clash:
            out.warn(
                f"{len(subject_clash)} file(s) name a subject other than their "
                f"'subject <s>' folder; the folder was used (e.g. {subject_clash[0]})"
            )
        if sentence_clash:
            out.warn(
                f"{len(sentence_clash)} file(s) name a sentence other than their "
                f"'sentence <k>' folder; the file name was used (e.g. {sentence_clash[0]})"
            )
