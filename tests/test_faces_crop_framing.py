"""The crop margin frames real faces as documented (docs/faces.md, "Framing across datasets").

The face is found in JAFFE photos by the project's detector, cut with ``crop_face`` at two
margins, and the detector is run again on each 48x48 crop (upsampled and padded, as in
benchmarks/compare_crop_framing.py): the face must fill the margin-0 crop and shrink by
``1 / (1 + 2 * margin)`` with the margin, staying centred.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pathnet_fer.faces.crop import crop_face
from pathnet_fer.faces.detector import FaceDetector
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.faces.video import read_image

PHOTOS = ("KA.HA1.29.tiff", "KM.SU1.14.tiff", "TM.AN1.190.tiff")


def face_in_crop(crop: np.ndarray, detector: FaceDetector) -> tuple[float, float, float]:
    """(box side / crop side, dx, dy) of the largest face re-detected in a crop."""
    side = crop.shape[0] * 4
    big = cv2.resize(crop, (side, side), interpolation=cv2.INTER_LINEAR)
    pad = side // 2
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=int(crop.mean()))
    boxes = detector.detect(big)
    assert len(boxes), "no face re-detected in the crop"
    x, y, w, h = (float(v) for v in boxes[0])
    return w / side, (x + w / 2 - pad) / side - 0.5, (y + h / 2 - pad) / side - 0.5


@pytest.mark.parametrize("name", PHOTOS)
def test_a_larger_margin_shrinks_the_face_in_the_crop_as_documented(require_data, name):
    path = require_data("jaffe") / name
    if not path.exists():
        pytest.skip(f"{name} not in the JAFFE copy")
    photo = read_image(path, "gray")
    boxes = FaceDetector(FaceSettings()).detect(photo)
    assert len(boxes)
    box = tuple(int(v) for v in boxes[0])
    measure = FaceDetector(FaceSettings(detect_side=0, min_face=0.2))

    tight = face_in_crop(crop_face(photo, box, FaceSettings(margin=0.0)), measure)
    loose = face_in_crop(crop_face(photo, box, FaceSettings(margin=0.3)), measure)

    assert 0.85 <= tight[0] <= 1.1  # margin 0: the Haar box is the crop
    assert loose[0] < tight[0]
    assert loose[0] / tight[0] == pytest.approx(1 / 1.6, abs=0.06)
    for offset in (*tight[1:], *loose[1:]):  # the crop stays centred on the face
        assert abs(offset) < 0.05
