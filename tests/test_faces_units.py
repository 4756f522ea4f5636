"""Face pipeline pieces: settings, the previous-face rule, crops, the streaming tracker."""

from __future__ import annotations

import numpy as np
import pytest

from pathnet_fer.faces.crop import crop_face, square_region
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.faces.tracking import FaceTracker, assign_boxes, choose_face
from pathnet_fer.faces.video import read_image

NONE = np.zeros((0, 4), dtype=np.int32)


def boxes(*rows) -> np.ndarray:
    return np.asarray(rows, dtype=np.int32).reshape(-1, 4)


def test_settings_key_roundtrip_and_validation():
    base = FaceSettings(detect=True)
    assert FaceSettings.from_dict(base.to_dict()) == base
    assert base.key() == FaceSettings(detect=True).key()  # stable across instances
    changed = {
        FaceSettings(detect=True, size=32).key(),
        FaceSettings(detect=True, colour="rgb").key(),
        FaceSettings(detect=True, margin=0.1).key(),
        FaceSettings(detect=True, every=2).key(),
        FaceSettings(detect=False).key(),
        FaceSettings(detect=True, multi_face="nearest").key(),
        FaceSettings(detect=True, detect_side=0).key(),
    }
    assert base.key() not in changed and len(changed) == 7
    assert FaceSettings().resolved(pre_cropped=True).detect is False
    assert FaceSettings().resolved(pre_cropped=False).detect is True
    assert FaceSettings(detect=True).resolved(pre_cropped=True).detect is True  # override wins
    with pytest.raises(ValueError, match="colour"):
        FaceSettings(colour="blue")
    with pytest.raises(ValueError, match="every"):
        FaceSettings(every=0)
    with pytest.raises(ValueError, match="multi_face"):
        FaceSettings(multi_face="random")
    with pytest.raises(ValueError, match="unknown FaceSettings fields"):
        FaceSettings.from_dict({"sise": 48})


def test_choose_face_policies():
    a, b = (10, 10, 50, 50), (200, 10, 40, 40)
    assert choose_face(NONE, a) is None
    assert choose_face(boxes(a), None) == a
    assert choose_face(boxes(a, b), a, "previous") is None  # the paper: fall back
    assert choose_face(boxes(a, b), (190, 5, 40, 40), "nearest") == b
    assert choose_face(boxes(a, b), None, "nearest") == a  # no previous face: the largest
    assert choose_face(boxes(a, b), b, "largest") == a


def test_assign_boxes_backfill_fallback_and_no_face():
    a, b, c = (10, 10, 50, 50), (12, 11, 50, 50), (300, 300, 30, 30)
    detections = [NONE, boxes(a, c), boxes(a), NONE, boxes(b, c), boxes(b), NONE]
    clip = assign_boxes(detections, "previous")
    assert clip is not None
    # frames 0-1 precede the first single face: backfilled with it, marked fallback
    np.testing.assert_array_equal(clip.boxes, boxes(a, a, a, a, a, b, b))
    np.testing.assert_array_equal(clip.fallback, [True, True, False, True, True, False, True])
    assert clip.n_detections == 2
    nearest = assign_boxes(detections, "nearest")
    np.testing.assert_array_equal(nearest.fallback, [True, False, False, True, False, False, True])
    np.testing.assert_array_equal(nearest.boxes[4], b)  # b is nearer to a than c is
    assert assign_boxes([NONE, NONE], "previous") is None  # never invent a face
    assert assign_boxes([boxes(a, c)], "previous") is None


def test_crop_shapes_margin_and_border():
    frame = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120) % 251
    frame = frame.astype(np.uint8)
    rgb = np.stack([frame, 255 - frame, frame // 2], axis=2)
    grey = crop_face(rgb, (20, 30, 40, 40), FaceSettings(size=48))
    assert grey.shape == (48, 48) and grey.dtype == np.uint8
    colour = crop_face(rgb, (20, 30, 40, 40), FaceSettings(size=32, colour="rgb"))
    assert colour.shape == (32, 32, 3)
    assert crop_face(frame, None, FaceSettings(size=48, colour="rgb")).shape == (48, 48, 3)
    # exact crop when the box already has the target size and no margin
    exact = crop_face(frame, (5, 7, 48, 48), FaceSettings(size=48))
    np.testing.assert_array_equal(exact, frame[7:55, 5:53])
    # centre (30, 20), side 40 * (1 + 2 * 0.25) = 60
    assert square_region((10, 10, 40, 20), 0.25) == (0, -10, 60, 50)
    # a box at the corner: the part outside the frame repeats border pixels
    corner = crop_face(frame, (-10, -10, 20, 20), FaceSettings(size=20))
    np.testing.assert_array_equal(corner[:10, :10], np.full((10, 10), frame[0, 0]))
    with pytest.raises(ValueError, match="outside"):
        crop_face(frame, (500, 500, 10, 10), FaceSettings())


def test_tracker_streams_with_previous_face_rule(require_data):
    face = read_image(require_data("face-media") / "single_face.jpg")
    blank = np.full_like(face, 128)
    tracker = FaceTracker(FaceSettings(detect=True))
    assert tracker.update(blank) == (None, False)  # nothing seen yet: no face, no guess
    box, fresh = tracker.update(face)
    assert fresh and box is not None and box[2] > 50
    x, y, w, h = box
    assert 0 <= x and 0 <= y and x + w <= face.shape[1] and y + h <= face.shape[0]
    assert tracker.update(blank) == (box, False)  # face gone: previous region reused
    assert tracker.n_fallback == 1 and tracker.n_faces == 0
    tracker.reset()
    assert tracker.update(blank) == (None, False)


def test_tracker_near_search_matches_full_search(require_data):
    """Searching near the previous face gives the boxes a full-frame search gives."""
    from pathnet_fer.faces.video import iter_frames

    clip = require_data("face-media") / "single_face.mp4"
    frames = [f for _, _, f in iter_frames(clip, every=2, pixel_format="gray")]
    strict = FaceTracker(FaceSettings(detect=True, recheck_every=1))
    quick = FaceTracker(FaceSettings(detect=True, recheck_every=10))
    a = np.array([strict.update(f).box for f in frames], dtype=float)
    b = np.array([quick.update(f).box for f in frames], dtype=float)
    assert strict.n_full == len(frames) and quick.n_full <= len(frames) // 5
    inter_w = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    inter_h = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
    iou = inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)
    assert iou.min() >= 0.8, iou.min()


def test_within_gap_limits_previous_face_reuse():
    from pathnet_fer.faces.extract import within_gap

    fallback = np.array([1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1], dtype=bool)
    np.testing.assert_array_equal(within_gap(fallback, 0), np.ones(13, bool))  # the paper
    keep = within_gap(fallback, 2)
    # backfill: 2 frames before the first face; gaps: 2 frames after each face
    np.testing.assert_array_equal(keep, [0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0])
    assert within_gap(np.zeros(4, bool), 1).all()
