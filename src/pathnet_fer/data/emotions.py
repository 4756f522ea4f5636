"""The label space: the six basic emotions, plus neutral as an optional 7th class."""

from __future__ import annotations

BASIC_EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
NEUTRAL = "neutral"

# Original labels (lower-cased) from every supported dataset -> canonical name.
# Labels mapped to None are known but never one of the 6 (contempt, calm); neutral maps
# to "neutral" and is kept only when a caller asks for 7 classes.
_SYNONYMS: dict[str, str | None] = {
    "anger": "anger",
    "angry": "anger",
    "ang": "anger",
    "an": "anger",
    "a": "anger",
    "disgust": "disgust",
    "disgusted": "disgust",
    "dis": "disgust",
    "di": "disgust",
    "d": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "fea": "fear",
    "fe": "fear",
    "f": "fear",
    "happiness": "happiness",
    "happy": "happiness",
    "hap": "happiness",
    "ha": "happiness",
    "h": "happiness",
    "joy": "happiness",
    "sadness": "sadness",
    "sad": "sadness",
    "sa": "sadness",
    "surprise": "surprise",
    "surprised": "surprise",
    "sur": "surprise",
    "su": "surprise",
    "neutral": NEUTRAL,
    "neu": NEUTRAL,
    "ne": NEUTRAL,
    "n": NEUTRAL,
    "contempt": None,
    "calm": None,
}


def class_names(keep_neutral: bool = False) -> tuple[str, ...]:
    """Class names in label-index order: the 6 basic emotions, then neutral if kept."""
    return BASIC_EMOTIONS + ((NEUTRAL,) if keep_neutral else ())


def canonical_emotion(label: str) -> str | None:
    """Map an original label to a canonical emotion name.

    Returns None for labels that are known but outside the label space (contempt, calm).
    Raises KeyError for labels nobody knows, so callers record them as skipped with reason.
    """
    key = label.strip().lower()
    if key not in _SYNONYMS:
        raise KeyError(f"unknown emotion label {label!r}")
    return _SYNONYMS[key]


def label_index(emotion: str, keep_neutral: bool = False) -> int:
    """Integer label of a canonical emotion within ``class_names(keep_neutral)``."""
    return class_names(keep_neutral).index(emotion)
