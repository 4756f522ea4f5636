"""Viola-Jones face detection: OpenCV's Haar frontal-face cascade, on a downscaled frame."""

from __future__ import annotations

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
        small = grey
        if scale < 1.0:
            size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
            small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        min_side = int(self.settings.min_face * min(small.shape[:2]))
        boxes = self.cascade.detectMultiScale(
            small,
            scaleFactor=self.settings.scale_factor,
            minNeighbors=self.settings.min_neighbors,
            minSize=(min_side, min_side),
        )
        if len(boxes) == 0:
            return np.zeros((0, 4), dtype=np.int32)
        boxes = np.asarray(boxes, dtype=np.float64)
        if scale < 1.0:
            boxes = boxes / scale
        boxes = np.rint(boxes).astype(np.int32)
        order = np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind="stable")
        return boxes[order]
