"""Decode video frames (PyAV) and still images, with one clear error type for bad media."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".webp"}
)

# A clip whose decoded frames stop this far short of what its container announces is
# truncated (a copy cut off mid-way): it is reported, never passed off as a whole clip.
# Judged on time where the frames carry timestamps: a frame count derived from a nominal
# rate (duration x 25 fps for a variable-frame-rate stream) is no promise of frames.
TRUNCATION_TOLERANCE = 0.9


class MediaError(Exception):
    """A video or image that cannot be read (corrupt, truncated, unsupported).

    The message says which file and what went wrong; the pipeline records it as the
    reason a clip was skipped.
    """


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path, pixel_format: str = "rgb24") -> np.ndarray:
    """One still image as uint8 RGB ``(h, w, 3)`` (or grey ``(h, w)`` for ``"gray"``)."""
    flag = cv2.IMREAD_GRAYSCALE if pixel_format == "gray" else cv2.IMREAD_COLOR
    try:
        image = cv2.imread(str(path), flag)
    except cv2.error as error:  # pragma: no cover - imread reports most failures as None
        raise MediaError(f"cannot read image {path}: {error}") from error
    if image is None or image.size == 0:
        raise MediaError(f"cannot read image {path}: not a readable image file")
    if pixel_format == "gray":
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _expected_frames(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    """Frames the container announces (0 when unknown)."""
    if stream.frames:
        return int(stream.frames)
    rate = stream.average_rate or stream.guessed_rate
    if container.duration and rate:
        return int(round(container.duration / av.time_base * float(rate)))
    return 0


def _announced_seconds(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """The video stream's duration in seconds as the container announces it (0: unknown)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _shortfall(
    decoded: int,
    expected: int,
    span: tuple[float, float] | None,
    rate: float | None,
    announced: float,
) -> str | None:
    """Why a fully decoded stream is a truncated copy, or None when it is whole.

    With timestamps and an announced duration, the frames must reach (90 % of) the end:
    a variable-frame-rate clip of 3 frames over 10 hours is whole, though 10 hours at its
    nominal 25 fps would be 900,000 frames. Without them, the announced frame count.
    """
    if span is not None and announced > 0:
        first, last = span
        covered = last - first + (1.0 / rate if rate else 0.0)
        if covered < TRUNCATION_TOLERANCE * announced:
            return (
                f"its frames end at {covered:.2f} s of the {announced:.2f} s its container "
                f"announces ({decoded} frames decoded)"
            )
        return None
    if expected and decoded < TRUNCATION_TOLERANCE * expected:
        return f"decoded {decoded} of the {expected} frames its container announces"
    return None


def iter_frames(
    path: str | Path, every: int = 1, pixel_format: str = "rgb24", check_complete: bool = True
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(index, timestamp_s, frame)`` for every ``every``-th frame of a video.

    ``index`` counts all decoded frames from 0, so it stays the frame's position in the
    clip when frames are skipped. Frames are uint8 RGB ``(h, w, 3)`` by default, or grey
    ``(h, w)`` with ``pixel_format="gray"`` (cheaper when only grey crops are wanted).
    A still image is treated as a one-frame clip.

    Raises :class:`MediaError` for a file that cannot be opened or decoded, and (with
    ``check_complete``) after the last frame of a clip whose frames end clearly before
    the duration its container announces (without timestamps: clearly fewer frames than
    it announces): a truncated copy (``_shortfall``).
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    path = Path(path)
    if is_image(path):
        yield 0, 0.0, read_image(path, pixel_format)
        return
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(f"cannot open video {path}: {error}") from error
    with container:
        if not container.streams.video:
            raise MediaError(f"no video stream in {path}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        expected = _expected_frames(container, stream)
        announced = _announced_seconds(container, stream)
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        decoded = 0
        span: tuple[float, float] | None = None  # first and last frame times, when known
        timed = True
        try:
            for frame in container.decode(stream):
                index = decoded
                decoded += 1
                if frame.time is None:
                    timed = False
                elif timed:
                    span = (float(frame.time) if span is None else span[0], float(frame.time))
                if index % every:
                    continue
                if frame.time is not None:
                    timestamp = float(frame.time)
                else:
                    timestamp = index / rate if rate else float(index)
                yield index, timestamp, frame.to_ndarray(format=pixel_format)
        except av.FFmpegError as error:
            raise MediaError(
                f"corrupt video {path}: decoding failed after {decoded} frames ({error})"
            ) from error
    if decoded == 0:
        raise MediaError(f"corrupt or empty video {path}: no frame could be decoded")
    shortfall = _shortfall(decoded, expected, span if timed else None, rate, announced)
    if check_complete and shortfall:
        raise MediaError(f"truncated video {path}: {shortfall}")


def count_frames(path: str | Path) -> int:
    """Number of decodable frames (decodes the whole clip: exact, not the header's guess)."""
    if is_image(path):
        read_image(path, "gray")
        return 1
    return sum(1 for _ in iter_frames(path, pixel_format="gray", check_complete=False))


def frame_count_hint(path: str | Path) -> int:
    """Frames announced by the container, without decoding (0 when unknown; 1 for images)."""
    if is_image(path):
        return 1
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return 0
            return _expected_frames(container, container.streams.video[0])
    except (av.FFmpegError, OSError):
        return 0


def frame_rate(path: str | Path) -> float:
    """The container's average frame rate (25 when it announces none)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            return float(rate) if rate else 25.0
    except (av.FFmpegError, OSError, IndexError) as error:
        raise MediaError(f"cannot open video {path}: {error}") from error
