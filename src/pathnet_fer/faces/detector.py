"""Viola-Jones face detection: OpenCV's Haar frontal-face cascade, on a downscaled frame."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from pathnet_fer.faces.settings import FaceSettings

CASCADE_FILE = "haarcascade_frontalface_default.xml"


@lru_cache(maxsize=4)
def load_cascade(name: str = CASCADE_FILE) -> cv2.CascadeClassifier:
    """The cascade shipped with opencv-python (``cv2.data.haarcascades``), loaded once."""
    path = Path(cv2.data.haarcascades) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"cannot load the Haar cascade {path}; is opencv-python installed?")
    return cascade


def to_grey(frame: np.ndarray) -> np.ndarray:
    """Grey view of an RGB ``(h, w, 3)`` or grey ``(h, w)`` uint8 frame."""
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


class FaceDetector:
    """Find frontal faces in a frame; boxes ``(x, y, w, h)`` in full-resolution pixels.

    Detection runs on a copy downscaled so its longer side is ``settings.detect_side``:
    the Haar cascade's cost grows with the pixel count, and the faces in emotion datasets
    are large, so boxes barely move (see benchmarks/bench_faces.py for the agreement with
    full-resolution detection).
    """

    def __init__(self, settings: FaceSettings | None = None) -> None:
        self.settings = settings or FaceSettings()
        self.cascade = load_cascade()

    def scale_for(self, shape: tuple[int, ...]) -> float:
        """Downscale factor (<= 1) for a frame of this shape."""
        side = self.settings.detect_side
        longest = max(shape[0], shape[1])
        if side <= 0 or longest <= side:
            return 1.0
        return side / longest

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """All faces in ``frame`` (RGB or grey) as an int ``(k, 4)`` array, largest first."""
        grey = to_grey(frame)
        scale = self.scale_for(grey.shape)
        min_side = int(self.settings.min_face * min(grey.shape[:2]) * scale)
        return self._run(grey, scale, (0, 0), (min_side, min_side), (0, 0))

    def detect_near(self, frame: np.ndarray, previous: Sequence[int]) -> np.ndarray:
        """Faces of about the previous face's size near it (a cheap search for tracking).

        Searches the previous box grown by half its side on each side, for faces 0.75 to
        1.33 times its size: a fraction of the work of a full-frame search. Faces
        elsewhere in the frame are not seen; :class:`FaceTracker` searches the full frame
        regularly and whenever this finds no face or several.
        """
        grey = to_grey(frame)
        scale = self.scale_for(grey.shape)
        x, y, w, h = (int(v) for v in previous)
        side = max(w, h)
        height, width = grey.shape[:2]
        x0, y0 = max(0, x - side // 2), max(0, y - side // 2)
        x1, y1 = min(width, x + w + side // 2), min(height, y + h + side // 2)
        if x1 - x0 < side // 2 or y1 - y0 < side // 2:
            return np.zeros((0, 4), dtype=np.int32)
        smallest = int(side * scale * 0.75)
        largest = int(np.ceil(side * scale * 1.34))
        return self._run(
            grey[y0:y1, x0:x1], scale, (x0, y0), (smallest, smallest), (largest, largest)
        )

    def _run(
        self,
        grey: np.ndarray,
        scale: float,
        offset: tuple[int, int],
        min_size: tuple[int, int],
        max_size: tuple[int, int],  # (0, 0): no limit
    ) -> np.ndarray:
        small = grey
        if scale < 1.0:
            size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
            small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        boxes = self.cascade.detectMultiScale(
            small,
            scaleFactor=self.settings.scale_factor,
            minNeighbors=self.settings.min_neighbors,
            minSize=min_size,
            maxSize=max_size,
        )
        if len(boxes) == 0:
            return np.zeros((0, 4), dtype=np.int32)
        boxes = np.asarray(boxes, dtype=np.float64)
        if scale < 1.0:
            boxes = boxes / scale
        boxes = np.rint(boxes).astype(np.int32)
        boxes[:, 0] += offset[0]
        boxes[:, 1] += offset[1]
        order = np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind="stable")
        return boxes[order]
