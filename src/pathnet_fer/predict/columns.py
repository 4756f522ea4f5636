"""The documented columns of a prediction table, and their dtypes.

One table shape for every input (video, image, folder): users of py-feat and fer expect
one row per frame and face, with NaN rows for frames without a face rather than gaps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DETECTION_KINDS: tuple[str, ...] = ("fresh", "fallback", "none")
"""``fresh``: the detector found the face in this frame; ``fallback``: the previous
frame's face region was reused (zero or several faces here, the paper's rule);
``none``: no face region is known yet (or ever) - the row has NaN probabilities."""

PROBABILITY_PREFIX = "p_"

# name -> (dtype, description). Probability columns are added per class by `columns()`.
BASE_COLUMNS: dict[str, tuple[str, str]] = {
    "file": ("string", "the input file (absolute path), or '<array>' for an in-memory image"),
    "frame": ("int64", "0-based index of the decoded frame (0 for an image)"),
    "timestamp": ("float64", "presentation time of the frame in seconds (0.0 for an image)"),
    "face_x": ("Int64", "left edge of the face box in pixels; <NA> where no face"),
    "face_y": ("Int64", "top edge of the face box in pixels; <NA> where no face"),
    "face_w": ("Int64", "box width in pixels; <NA> where no face"),
    "face_h": ("Int64", "box height in pixels; <NA> where no face"),
    "detection": ("category", "fresh | fallback | none (see DETECTION_KINDS)"),
}
EMOTION_COLUMN = ("emotion", "category", "predicted emotion (argmax); <NA> where no face")

BOX_COLUMNS: tuple[str, ...] = ("face_x", "face_y", "face_w", "face_h")


def probability_column(class_name: str) -> str:
    """``anger`` -> ``p_anger``."""
    return f"{PROBABILITY_PREFIX}{class_name}"


def columns(class_names: Sequence[str]) -> list[str]:
    """Column order of a prediction table for a model with these classes."""
    return [
        *BASE_COLUMNS,
        *(probability_column(c) for c in class_names),
        EMOTION_COLUMN[0],
    ]


def describe(class_names: Sequence[str]) -> pd.DataFrame:
    """The documented schema as a table: column, dtype, description."""
    rows = [(name, dtype, text) for name, (dtype, text) in BASE_COLUMNS.items()]
    rows += [
        (probability_column(c), "float64", f"probability of {c} (rows sum to 1); NaN where no face")
        for c in class_names
    ]
    rows.append(EMOTION_COLUMN)
    return pd.DataFrame(rows, columns=["column", "dtype", "description"])


def empty_frame(class_names: Sequence[str]) -> pd.DataFrame:
    """A zero-row prediction table with the documented columns and dtypes."""
    return build_frame(
        class_names,
        file=[],
        frame=np.zeros(0, np.int64),
        timestamp=np.zeros(0),
        boxes=np.zeros((0, 4)),
        detection=[],
        proba=np.zeros((0, len(class_names))),
    )


def build_frame(
    class_names: Sequence[str],
    *,
    file: Sequence[str],
    frame: np.ndarray,
    timestamp: np.ndarray,
    boxes: np.ndarray,
    detection: Sequence[str],
    proba: np.ndarray,
) -> pd.DataFrame:
    """Assemble a prediction table from column arrays (vectorised, one call per chunk).

    ``boxes`` is float ``(n, 4)`` with NaN rows where no face; ``proba`` is ``(n, C)`` with
    NaN rows where no face. The predicted emotion is the argmax of each non-NaN row.
    """
    n = len(frame)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(n, 4)
    proba = np.asarray(proba, dtype=np.float64).reshape(n, len(class_names))
    data: dict[str, object] = {
        "file": pd.array(list(file), dtype="string"),
        "frame": np.asarray(frame, dtype=np.int64),
        "timestamp": np.asarray(timestamp, dtype=np.float64),
    }
    for j, name in enumerate(BOX_COLUMNS):
        col = boxes[:, j]
        arr = pd.array(np.where(np.isnan(col), 0, col).astype(np.int64), dtype="Int64")
        arr[np.isnan(col)] = pd.NA
        data[name] = arr
    data["detection"] = pd.Categorical(list(detection), categories=list(DETECTION_KINDS))
    for j, c in enumerate(class_names):
        data[probability_column(c)] = proba[:, j]
    has_face = ~np.isnan(proba).any(axis=1) if len(class_names) else np.zeros(n, bool)
    codes = np.full(n, -1, dtype=np.int64)
    if n and has_face.any():
        codes[has_face] = proba[has_face].argmax(axis=1)
    data[EMOTION_COLUMN[0]] = pd.Categorical.from_codes(codes, categories=list(class_names))
    return pd.DataFrame(data, columns=columns(class_names))


def class_names_of(table: pd.DataFrame) -> list[str]:
    """Recover the class names from a prediction table's probability columns (the main
    answer's; a head's columns carry ``@<head>``)."""
    return [
        c[len(PROBABILITY_PREFIX) :]
        for c in table.columns
        if c.startswith(PROBABILITY_PREFIX) and HEAD_SEPARATOR not in c
    ]


HEAD_SEPARATOR = "@"
"""``--head all`` adds each head's answer beside the combination: ``p_<class>@<head>``
(float64, that head's calibrated probability; NaN where no face) and ``emotion@<head>``
(category, its arg-max)."""


def add_head_columns(
    table: pd.DataFrame, head: str, class_names: Sequence[str], proba: np.ndarray
) -> pd.DataFrame:
    """``table`` with one head's probability and emotion columns appended."""
    proba = np.asarray(proba, dtype=np.float64).reshape(len(table), len(class_names))
    extra: dict[str, object] = {
        f"{probability_column(c)}{HEAD_SEPARATOR}{head}": proba[:, j]
        for j, c in enumerate(class_names)
    }
    has_face = ~np.isnan(proba).any(axis=1)
    codes = np.full(len(table), -1, dtype=np.int64)
    if has_face.any():
        codes[has_face] = proba[has_face].argmax(axis=1)
    extra[f"{EMOTION_COLUMN[0]}{HEAD_SEPARATOR}{head}"] = pd.Categorical.from_codes(
        codes, categories=list(class_names)
    )
    return pd.concat([table, pd.DataFrame(extra, index=table.index)], axis=1)


def read_predictions(path: str, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a predictions CSV back with the documented dtypes (empty box cells -> <NA>)."""
    table = pd.read_csv(path, dtype={c: "Int64" for c in BOX_COLUMNS} | {"file": "string"})
    names = list(class_names) if class_names is not None else class_names_of(table)
    table["detection"] = pd.Categorical(table["detection"], categories=list(DETECTION_KINDS))
    table["emotion"] = pd.Categorical(table["emotion"], categories=names)
    heads = [c for c in table.columns if HEAD_SEPARATOR in c]  # --head all
    for c in heads:
        if c.startswith(f"{EMOTION_COLUMN[0]}{HEAD_SEPARATOR}"):
            head = c.split(HEAD_SEPARATOR, 1)[1]
            own = [h[len(PROBABILITY_PREFIX) : -len(head) - 1] for h in heads
                   if h.startswith(PROBABILITY_PREFIX) and h.endswith(f"{HEAD_SEPARATOR}{head}")]  # fmt: skip
            table[c] = pd.Categorical(table[c], categories=own)
    return table[columns(names) + heads]
