"""Cut a square face crop with a margin around a box, resize it, convert its colour, blur it."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pathnet_fer.faces.settings import FaceSettings


def square_region(box: Sequence[int], margin: float) -> tuple[int, int, int, int]:
    """Square ``(x0, y0, x1, y1)`` centred on ``box`` = ``(x, y, w, h)``, grown by ``margin``.

    The side is ``max(w, h) * (1 + 2 * margin)``: ``margin`` is the fraction of the box
    added on each side. The region may extend beyond the frame (see :func:`crop_face`).
    """
    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    s = max(1, int(round(side)))
    return x0, y0, x0 + s, y0 + s


def crop_face(
    frame: np.ndarray, box: Sequence[int] | None, settings: FaceSettings | None = None
) -> np.ndarray:
    """uint8 crop ``(size, size)`` (grey) or ``(size, size, 3)`` (rgb) of ``frame``.

    ``frame`` is RGB ``(h, w, 3)`` or grey ``(h, w)``. ``box=None`` takes the whole frame
    (pre-cropped datasets: CK+48, FER-2013). Parts of the square that fall outside the
    frame repeat the border pixels (no black bars that a network could learn from).
    Downscaling uses area averaging (no aliasing on large faces). The finished crop is
    blurred by ``settings.blur`` (see :func:`blur_crop`; 0 = untouched).
    """
    settings = settings or FaceSettings()
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if box is None:
        patch = frame
    else:
        height, width = frame.shape[:2]
        x0, y0, x1, y1 = square_region(box, settings.margin)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if cx1 <= cx0 or cy1 <= cy0:
            raise ValueError(f"face box {tuple(box)} lies outside the {width}x{height} frame")
        patch = frame[cy0:cy1, cx0:cx1]
        pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
        if any(pads):
            patch = cv2.copyMakeBorder(patch, *pads, borderType=cv2.BORDER_REPLICATE)
    size = settings.size
    if patch.shape[0] != size or patch.shape[1] != size:
        shrinking = patch.shape[0] > size and patch.shape[1] > size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        patch = cv2.resize(patch, (size, size), interpolation=interpolation)
    if settings.colour == "grey":
        if patch.ndim == 3:
            patch = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
    elif patch.ndim == 2:
        patch = np.repeat(patch[:, :, None], 3, axis=2)
    return blur_crop(np.ascontiguousarray(patch, dtype=np.uint8), settings.blur)


def blur_crop(crop: np.ndarray, sigma: float) -> np.ndarray:
    """``crop`` (uint8, grey or rgb) smoothed by a Gaussian of ``sigma`` pixels of the crop.

    ``sigma <= 0`` returns ``crop`` itself, untouched. Otherwise OpenCV's ``GaussianBlur``
    with its own kernel size for ``sigma`` (radius about 3 sigma), borders mirrored
    (``BORDER_REFLECT_101``), rounded back to uint8. This is ``FaceSettings.blur``: every
    dataset's crops (and a predictor's) blurred alike. An optional setting with no measured
    benefit on the current data (it once matched a blurred copy of FER-2013's training
    split, since replaced by the sharp originals; ``benchmarks/fer2013_blur_gap.py``,
    docs/faces.md).
    """
    if not sigma > 0:
        return crop
    blurred = cv2.GaussianBlur(
        crop, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT_101
    )
    return np.ascontiguousarray(blurred, dtype=np.uint8)
