"""Write a video with the face boxes and predicted emotions drawn on every analysed frame.

Encoded with PyAV's libx264 (H.264, yuv420p, the format every player reads; OpenCV's
VideoWriter cannot write H.264 with the wheels we use). When this PyAV build lacks
libx264 the writer falls back to MPEG-4 Part 2 and says so: never silently.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd

from pathnet_fer.faces.video import MediaError

PREFERRED_CODEC = "libx264"
FALLBACK_CODEC = "mpeg4"

# RGB colours: fresh detection, previous-face fallback, no face.
COLOURS = {"fresh": (40, 200, 60), "fallback": (255, 160, 0), "none": (220, 40, 40)}


def available_codec(preferred: str = PREFERRED_CODEC) -> tuple[str, str | None]:
    """``(codec, warning)``: the preferred encoder when PyAV has it, else the fallback."""
    try:
        av.codec.Codec(preferred, "w")
        return preferred, None
    except Exception:  # PyAV raises UnknownCodecError (name varies across versions)
        pass
    try:
        av.codec.Codec(FALLBACK_CODEC, "w")
    except Exception as exc:
        raise RuntimeError(
            f"this PyAV build has neither {preferred} nor {FALLBACK_CODEC}: cannot write "
            "annotated videos (install PyAV from PyPI, whose wheels include libx264)"
        ) from exc
    return FALLBACK_CODEC, (
        f"PyAV here has no {preferred} encoder: writing MPEG-4 Part 2 ({FALLBACK_CODEC}) "
        "instead; the file plays in VLC/ffmpeg but may not in browsers"
    )


def draw_face(
    frame: np.ndarray,
    box: tuple[float, float, float, float] | None,
    detection: str,
    label: str,
) -> np.ndarray:
    """Draw one face's box and label on an RGB frame in place; returns the frame."""
    colour = COLOURS.get(detection, COLOURS["none"])
    height, width = frame.shape[:2]
    scale = max(0.7, min(width, height) / 480.0)
    thickness = max(1, int(round(2 * scale)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    if box is None:
        cv2.putText(frame, label, (8, int(24 * scale) + 4), font, 0.7 * scale, colour,
                    thickness, cv2.LINE_AA)  # fmt: skip
        return frame
    x, y, w, h = (int(round(v)) for v in box)
    cv2.rectangle(frame, (x, y), (x + w, y + h), colour, thickness)
    (tw, th), base = cv2.getTextSize(label, font, 0.6 * scale, thickness)
    ty = y - 6 if y - th - base - 6 >= 0 else min(height - base - 2, y + h + th + 6)
    cv2.rectangle(frame, (x, ty - th - base), (x + tw + 4, ty + base), colour, cv2.FILLED)
    cv2.putText(frame, label, (x + 2, ty), font, 0.6 * scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return frame


class VideoAnnotator:
    """Streaming H.264 writer: ``write(rgb_frame)`` frame by frame, then ``close()``.

    The size is fixed by the first frame; odd widths/heights are padded by one pixel
    (yuv420p needs even sides).
    """

    def __init__(self, path: str | Path, fps: float | Fraction, *, crf: int = 23) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.codec, self.warning = available_codec()
        if self.warning:
            print(f"warning: {self.warning}", file=sys.stderr)
        rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
        if rate <= 0:
            rate = Fraction(25)
        self.rate = rate
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream(self.codec, rate=rate)
        self._stream.pix_fmt = "yuv420p"
        if self.codec == PREFERRED_CODEC:
            self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self._size: tuple[int, int] | None = None
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        """Encode one RGB ``(h, w, 3)`` (or grey ``(h, w)``) uint8 frame."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        h, w = frame.shape[:2]
        if self._size is None:
            self._size = (w + (w % 2), h + (h % 2))
            self._stream.width, self._stream.height = self._size
        tw, th = self._size
        if (w, h) != (tw, th):
            if w <= tw and h <= th:
                frame = cv2.copyMakeBorder(frame, 0, th - h, 0, tw - w, cv2.BORDER_REPLICATE)
            else:
                frame = cv2.resize(frame, (tw, th), interpolation=cv2.INTER_AREA)
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames_written  # constant rate: one tick of 1/rate per frame
        video_frame.time_base = 1 / self.rate
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (always call, also after an error)."""
        if self._container is None:
            return
        try:
            if self._size is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoAnnotator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def annotation_label(emotion: str | None, probability: float, detection: str) -> str:
    """``happiness 0.82`` (``*`` marks a previous-face fallback); ``no face`` otherwise."""
    if emotion is None:
        return "no face"
    return f"{emotion} {probability:.2f}{'*' if detection == 'fallback' else ''}"


# Frame sink for annotation: (rgb frames, their rows of the prediction table).
FrameSink = Callable[[list[np.ndarray], pd.DataFrame], None]


class ImageWriter:
    """The ``write`` side of ``VideoAnnotator`` for a still image (PNG via OpenCV)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, frame: np.ndarray) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(self.path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise MediaError(f"cannot write the annotated image {self.path}")


def annotation_sink(writer: VideoAnnotator | ImageWriter, class_names: Sequence[str]) -> FrameSink:
    """Draw each frame's box and label from its table rows, then encode it."""
    pcols = [f"p_{c}" for c in class_names]

    def sink(images: list[np.ndarray], table: pd.DataFrame) -> None:
        boxes = table[["face_x", "face_y", "face_w", "face_h"]].to_numpy(
            np.float64, na_value=np.nan
        )
        proba = table[pcols].to_numpy(np.float64)
        detection = table["detection"].astype(str).to_numpy()
        # Rows of one frame are consecutive (several only for a still image's faces).
        frames = table["frame"].to_numpy()
        starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
        ends = np.r_[starts[1:], len(frames)]
        for image, start, end in zip(images, starts, ends, strict=True):
            frame = np.array(image, copy=True)
            for box, p, det in zip(
                boxes[start:end], proba[start:end], detection[start:end], strict=True
            ):
                if np.isnan(box).any():
                    draw_face(frame, None, det, "no face")
                else:
                    k = int(np.argmax(p))
                    label = annotation_label(class_names[k], float(p[k]), det)
                    draw_face(frame, tuple(box), det, label)
            writer.write(frame)

    return sink
