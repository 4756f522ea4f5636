"""One clip (video or image) -> its face crops, with the counts the manifest reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pathnet_fer.faces.crop import crop_face
from pathnet_fer.faces.detector import FaceDetector
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.faces.tracking import FaceTracker, choose_face
from pathnet_fer.faces.video import MediaError, is_image, iter_frames, read_image

NO_FACE = "no face detected"
# Frames held in memory while waiting for a clip's first face (about 300 MB of 720p grey);
# later ones are decoded a second time once the face is known.
MAX_PENDING_FRAMES = 300
SEVERAL_FACES = "several faces in every frame and no single face to follow (policy 'previous')"


@dataclass
class ClipFaces:
    """Crops of one clip plus what happened. ``status`` is ``"ok"`` or ``"skipped"``."""

    images: np.ndarray  # uint8 (n, size, size[, 3])
    frame_index: np.ndarray  # int32 (n,)
    fallback: np.ndarray  # bool (n,)
    boxes: np.ndarray = None  # int32 (n, 4): x, y, w, h in the full-resolution frame
    status: str = "ok"
    reason: str = ""
    n_frames: int = 0  # frames considered (every k-th decoded frame)
    n_detections: int = 0  # frames whose face was detected in that frame (fresh)
    n_multi: int = 0  # frames where several faces were detected
    n_dropped: int = 0  # frames farther than settings.max_gap from any detection
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.boxes is None:
            self.boxes = np.zeros((len(self.frame_index), 4), dtype=np.int32)

    @property
    def n_fallback(self) -> int:
        return int(self.fallback.sum())

    @property
    def n_crops(self) -> int:
        return int(len(self.images))


def skipped_faces(settings: FaceSettings, status: str, reason: str, **counts: int) -> ClipFaces:
    """A clip without crops (status and reason say why), shaped for ``settings``."""
    shape = (0, settings.size, settings.size) + ((3,) if settings.colour == "rgb" else ())
    return ClipFaces(
        images=np.zeros(shape, dtype=np.uint8),
        frame_index=np.zeros(0, dtype=np.int32),
        fallback=np.zeros(0, dtype=bool),
        status=status,
        reason=reason,
        **counts,
    )


def extract_faces(
    path: str, settings: FaceSettings, detector: FaceDetector | None = None
) -> ClipFaces:
    """Decode ``path`` and crop the face of every kept frame (``settings.detect`` resolved).

    Frames before the first usable detection are held back and cropped with the clip's
    first face (the backfill rule in :mod:`pathnet_fer.faces.tracking`). Bad media and
    clips without a face come back as ``status="skipped"`` with the reason, not as errors.
    """
    if settings.detect is None:
        raise ValueError("settings.detect must be resolved for the dataset first")
    pixel_format = "gray" if settings.colour == "grey" else "rgb24"
    crops: list[np.ndarray] = []
    indices: list[int] = []
    fallback: list[bool] = []
    boxes: list[tuple[int, int, int, int]] = []
    n_frames = 0
    if settings.detect and is_image(path):
        return _extract_image(path, settings, detector)
    try:
        if not settings.detect:
            for index, _, frame in iter_frames(path, settings.every, pixel_format):
                crops.append(crop_face(frame, None, settings))
                indices.append(index)
                fallback.append(False)
                boxes.append((0, 0, frame.shape[1], frame.shape[0]))
            n_frames = len(crops)
        else:
            tracker = FaceTracker(settings, detector)
            pending: list[tuple[int, np.ndarray]] = []  # frames before the first face
            n_multi = 0
            for index, _, frame in iter_frames(path, settings.every, pixel_format):
                n_frames += 1
                box, fresh = tracker.update(frame)
                n_multi += tracker.n_faces > 1
                if box is None:
                    # hold frames until the first face; past the cap keep only the index
                    # and decode the opening again once the face is known
                    pending.append((index, frame if len(pending) < MAX_PENDING_FRAMES else None))
                    continue
                if pending:
                    for pending_index, pending_frame in _pending_frames(path, pending, settings):
                        crops.append(crop_face(pending_frame, box, settings))
                        indices.append(pending_index)
                        fallback.append(True)
                        boxes.append(box)
                    pending.clear()
                crops.append(crop_face(frame, box, settings))
                indices.append(index)
                fallback.append(not fresh)
                boxes.append(box)
    except MediaError as error:
        return skipped_faces(settings, "skipped", str(error), n_frames=n_frames)
    if settings.detect and not crops:
        reason = SEVERAL_FACES if n_multi and settings.multi_face == "previous" else NO_FACE
        return skipped_faces(settings, "skipped", reason, n_frames=n_frames, n_multi=n_multi)
    fallback_array = np.asarray(fallback, dtype=bool)
    keep = within_gap(fallback_array, settings.max_gap) if settings.detect else None
    if keep is not None and not keep.all():
        crops = [crop for crop, kept in zip(crops, keep, strict=True) if kept]
    result = ClipFaces(
        images=np.stack(crops).astype(np.uint8, copy=False),
        frame_index=np.asarray(indices, dtype=np.int32),
        fallback=fallback_array,
        boxes=np.asarray(boxes, dtype=np.int32).reshape(-1, 4),
        n_frames=n_frames,
    )
    if keep is not None and not keep.all():
        result.frame_index = result.frame_index[keep]
        result.fallback = result.fallback[keep]
        result.boxes = result.boxes[keep]
        result.n_dropped = int((~keep).sum())
    if settings.detect:
        result.n_detections = int((~result.fallback).sum())
        result.n_multi = n_multi
    return result


def within_gap(fallback: np.ndarray, max_gap: int) -> np.ndarray:
    """Frames to keep: fresh ones, and fallbacks at most ``max_gap`` frames after the last
    detection (before the first detection: at most ``max_gap`` frames before it).

    ``fallback`` is in frame order; ``max_gap=0`` keeps everything (the paper's rule).
    """
    n = len(fallback)
    if max_gap <= 0 or n == 0 or not fallback.any():
        return np.ones(n, dtype=bool)
    position = np.arange(n)
    fresh = ~fallback
    last_fresh = np.maximum.accumulate(np.where(fresh, position, -1))
    first_fresh = int(np.argmax(fresh))
    distance = np.where(last_fresh >= 0, position - last_fresh, first_fresh - position)
    return distance <= max_gap


def _pending_frames(
    path: str, pending: list[tuple[int, np.ndarray | None]], settings: FaceSettings
) -> list[tuple[int, np.ndarray]]:
    """The held-back frames, re-decoding those dropped to bound memory (long faceless starts)."""
    dropped = {index for index, frame in pending if frame is None}
    if not dropped:
        return pending
    pixel_format = "gray" if settings.colour == "grey" else "rgb24"
    last = max(dropped)
    frames = {index: frame for index, frame in pending if frame is not None}
    for index, _, frame in iter_frames(path, settings.every, pixel_format, check_complete=False):
        if index in dropped:
            frames[index] = frame
        if index >= last:
            break
    return [(index, frames[index]) for index, _ in pending]


def _extract_image(path: str, settings: FaceSettings, detector: FaceDetector | None) -> ClipFaces:
    """A still image has no previous frame: with several faces it takes the largest.

    (The paper's previous-face rule cannot apply; skipping would drop single-face images
    in which the cascade also fires on a small false positive, e.g. JAFFE's MK.DI3.130.)
    The count of such images is reported as ``n_multi``.
    """
    pixel_format = "gray" if settings.colour == "grey" else "rgb24"
    try:
        image = read_image(path, pixel_format)
    except MediaError as error:
        return skipped_faces(settings, "skipped", str(error))
    boxes = (detector or FaceDetector(settings)).detect(image)
    if len(boxes) == 0:
        return skipped_faces(settings, "skipped", NO_FACE, n_frames=1)
    box = choose_face(boxes, None, settings.multi_face) or tuple(int(v) for v in boxes[0])
    return ClipFaces(
        images=crop_face(image, box, settings)[None],
        frame_index=np.zeros(1, dtype=np.int32),
        fallback=np.zeros(1, dtype=bool),
        boxes=np.asarray([box], dtype=np.int32),
        n_frames=1,
        n_detections=1,
        n_multi=int(len(boxes) > 1),
    )
