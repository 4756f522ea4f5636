"""The paper's previous-face rule: which face region each frame of a clip uses.

Rule (method.md 1.3): a frame with exactly one detected face uses it; a frame with no
face, or several, reuses the previous frame's face region (a *fallback*). With the
``nearest`` policy a frame with several faces takes the one closest to the previous face
instead, and with ``largest`` the biggest one; both count as fresh detections.

What the paper leaves open, decided here:
- Frames before the first usable detection (offline, whole clip known): they reuse the
  FIRST usable face of the clip (backfill) and are marked ``fallback=True``.
- A clip with no usable detection at all is skipped ("no face detected"); a face is
  never invented (no centre crop, no guess).
- Speed: :meth:`FaceTracker.update` searches near the followed face first and the full
  frame every ``settings.recheck_every`` frames or when the nearby search finds no face
  or several (see docs/faces.md for the one case where this differs).
- Streaming (:class:`FaceTracker`, cannot look ahead): before the first usable detection
  ``update`` returns ``(None, False)``; the caller has no face for those frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from pathnet_fer.faces.detector import FaceDetector
from pathnet_fer.faces.settings import FaceSettings

Box = tuple[int, int, int, int]


def _centre(box: np.ndarray) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64).reshape(-1, 4)
    return box[:, :2] + box[:, 2:] / 2.0


def choose_face(boxes: np.ndarray, previous: Box | None, policy: str = "previous") -> Box | None:
    """The face a frame uses among its detections, or None (-> previous-face fallback).

    ``boxes`` is ``(k, 4)`` sorted largest first (as :class:`FaceDetector` returns them).
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    if len(boxes) == 0:
        return None
    if len(boxes) == 1:
        return tuple(int(v) for v in boxes[0])
    if policy == "previous":
        return None
    if policy == "nearest" and previous is not None:
        distance = np.linalg.norm(_centre(boxes) - _centre(np.asarray(previous)), axis=1)
        return tuple(int(v) for v in boxes[int(np.argmin(distance))])
    if policy in ("nearest", "largest"):
        return tuple(int(v) for v in boxes[0])
    raise ValueError(f"unknown multi-face policy {policy!r}")


class ClipBoxes(NamedTuple):
    """Per-frame face regions of one clip (see module docstring for the rule)."""

    boxes: np.ndarray  # int32 (n, 4)
    fallback: np.ndarray  # bool (n,): True = region reused, not detected in this frame
    n_detections: int  # frames where a face was detected and used (fresh)


def assign_boxes(detections: Sequence[np.ndarray], policy: str = "previous") -> ClipBoxes | None:
    """Apply the previous-face rule to a whole clip; None when no frame has a usable face."""
    n = len(detections)
    boxes = np.zeros((n, 4), dtype=np.int32)
    fresh = np.zeros(n, dtype=bool)
    previous: Box | None = None
    first: int | None = None
    for i, found in enumerate(detections):
        chosen = choose_face(found, previous, policy)
        if chosen is not None:
            previous = chosen
            fresh[i] = True
            if first is None:
                first = i
        if previous is not None:
            boxes[i] = previous
    if first is None:
        return None
    boxes[:first] = boxes[first]  # backfill: frames before the first face use the first face
    return ClipBoxes(boxes=boxes, fallback=~fresh, n_detections=int(fresh.sum()))


class Track(NamedTuple):
    box: Box | None
    fresh: bool


class FaceTracker:
    """Frame-by-frame face region for streaming use (no look-ahead).

    ``update(frame)`` returns ``(box, fresh)``: ``fresh=True`` when the face was detected in
    this frame, ``False`` when the previous region is reused. Before the first usable
    detection it returns ``(None, False)``. ``n_faces`` holds the last frame's detection
    count, ``n_fallback`` the fallbacks so far. ``update_with_boxes`` applies the rule to
    detections made elsewhere (always full-frame ones).
    """

    def __init__(self, settings: FaceSettings | None = None, detector: FaceDetector | None = None):
        self.settings = settings or FaceSettings()
        self.detector = detector or FaceDetector(self.settings)
        self.reset()

    def reset(self) -> None:
        """Forget the previous face (call between clips)."""
        self.previous: Box | None = None
        self.n_faces = 0
        self.n_fallback = 0
        self.n_full = 0  # full-frame searches so far
        self._since_full = 0

    def update_with_boxes(self, boxes: np.ndarray) -> Track:
        """Advance with detections computed elsewhere (e.g. by a batch detector)."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        self.n_faces = len(boxes)
        chosen = choose_face(boxes, self.previous, self.settings.multi_face)
        if chosen is not None:
            self.previous = chosen
            return Track(chosen, True)
        if self.previous is not None:
            self.n_fallback += 1
        return Track(self.previous, False)

    def update(self, frame: np.ndarray) -> Track:
        """Detect in ``frame`` (RGB or grey) and return this frame's face region.

        While a face is followed, the search starts near it; the full frame is searched
        every ``settings.recheck_every`` frames and whenever the nearby search finds no
        face or several, so the previous-face rule sees what a full search would.
        """
        if self.previous is not None and self._since_full + 1 < self.settings.recheck_every:
            near = self.detector.detect_near(frame, self.previous)
            if len(near) == 1:
                self._since_full += 1
                return self.update_with_boxes(near)
        self._since_full = 0
        self.n_full += 1
        return self.update_with_boxes(self.detector.detect(frame))
