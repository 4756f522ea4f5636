"""Streaming prediction: decode -> detect/track -> crop -> classify in batches -> table.

Memory stays flat in video length: frames are decoded one at a time, only the face crops
(and, when annotating, the frames) of the current batch are held, and each batch goes
through the network in one call. Crops are made exactly as in training (same decoder
pixel format, detector, tracker and crop code as ``faces.extract``), so a model sees
at prediction time what it saw in training.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathnet_fer.faces.crop import crop_face
from pathnet_fer.faces.detector import FaceDetector
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.faces.tracking import FaceTracker
from pathnet_fer.faces.video import MediaError, frame_rate, is_image, iter_frames, read_image
from pathnet_fer.formats.loaded_model import LoadedModel, check_compatible
from pathnet_fer.formats.model_file import load_model
from pathnet_fer.pathnet.heads_model import ALL, COMBINED
from pathnet_fer.predict.annotate import FrameSink, ImageWriter, VideoAnnotator, annotation_sink
from pathnet_fer.predict.columns import add_head_columns, build_frame, empty_frame
from pathnet_fer.predict.detection_ahead import DetectionAhead
from pathnet_fer.predict.inputs import expand_inputs
from pathnet_fer.predict.outputs import annotation_targets, check_outputs
from pathnet_fer.predict.summary import summarise
from pathnet_fer.pretrained import pretrained_path

DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_FALLBACK_S = 1.0
"""How long (seconds) the previous face region stands in for a face the detector lost.

The paper's rule reuses the previous face for ever, which bridges short detection
drop-outs in training clips; on real footage the person may leave (``face_noface.mov``)
and a stale box would go on producing confident predictions of an empty background.
After this long without a fresh detection, rows become ``none`` (NaN)."""
ARRAY_NAME = "<array>"


@dataclass
class Problem:
    """An input that could not be (fully) processed, and what was kept of it."""

    file: str
    reason: str
    rows_kept: int = 0


@dataclass
class PredictionResult:
    """What ``predict_paths`` returns: the table, the per-file summary, the problems."""

    predictions: pd.DataFrame
    summary: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    """Frames of the current batch awaiting classification (struct of lists)."""

    frame: list[int] = field(default_factory=list)
    timestamp: list[float] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    detection: list[str] = field(default_factory=list)
    crop_slot: list[int] = field(default_factory=list)  # index into crops, -1 = no face
    images: list[np.ndarray] = field(default_factory=list)  # rgb frames (annotation only)
    crops: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame)


_NO_BOX = (np.nan, np.nan, np.nan, np.nan)


class Predictor:
    """Classify the faces in videos and images with a PathNet model file.

    ``detect=False`` treats each whole frame as the face (inputs that are already face
    crops, like CK+48). ``max_fallback_s`` bounds the previous-face fallback (see
    ``DEFAULT_MAX_FALLBACK_S``; ``math.inf`` = the paper's unbounded rule). ``workers``
    threads run the face detector on consecutive frames at once (default: all cores);
    the previous-face rule is still applied in frame order, so results do not depend on
    it. ``face_settings`` overrides the model's crop settings (margin,
    detector parameters); a size or colour the network was not trained on is refused.
    ``mirror``: average each face with its mirror image (default: the file's setting).
    ``prior``: ``train`` or ``uniform`` class prior (default: the file's setting;
    formats/class_prior.py).
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        detect: bool = True,
        face_settings: FaceSettings | None = None,
        max_fallback_s: float = DEFAULT_MAX_FALLBACK_S,
        workers: int | None = None,
        head: str = COMBINED,
        mirror: bool | None = None,
        prior: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not max_fallback_s >= 0:
            raise ValueError(f"max_fallback_s must be >= 0 seconds, got {max_fallback_s}")
        self.max_fallback_s = float(max_fallback_s)
        # ``all``: the combination, plus each head's columns; otherwise one head's answer
        self.head_columns = head == ALL and len(model.head_names) > 1
        model = model if head == ALL else model.with_head(head)
        model = model if mirror is None else model.mirrored(mirror)
        self.model = model if prior is None else model.with_prior(prior)
        self.batch_size = int(batch_size)
        settings = face_settings if face_settings is not None else model.face_settings
        check_compatible(model.input, settings)
        self.face_settings: FaceSettings = replace(settings, detect=detect, every=1)
        self.detect = detect
        self._detector = FaceDetector(self.face_settings) if detect else None  # checks cascade
        self.workers = max(1, int(workers if workers is not None else (os.cpu_count() or 1)))
        self._ahead = DetectionAhead(self.face_settings, self.workers if detect else 0)

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str = "cpu", **kwargs: Any) -> Predictor:
        """Load and check a model file (see ``model_file.load_model``)."""
        return cls(load_model(path, device=device), **kwargs)

    @classmethod
    def pretrained(cls, device: str = "cpu", **kwargs: Any) -> Predictor:
        """The model the package ships (``pathnet_fer.pretrained``, docs/model-card.md):
        ``Predictor.pretrained().predict_video("clip.mp4")``."""

        return cls.from_file(pretrained_path(), device=device, **kwargs)

    @property
    def class_names(self) -> list[str]:
        return list(self.model.class_names)

    @property
    def _pixel_format(self) -> str:
        # Same decoder output as training crops (faces.extract): grey models decode grey.
        return "gray" if self.face_settings.colour == "grey" else "rgb24"

    # ------------------------------------------------------------------ public API
    def predict_video(
        self, path: str | os.PathLike, every: int = 1, annotate: str | os.PathLike | None = None
    ) -> pd.DataFrame:
        """One row per analysed frame (every ``every``-th); NaN rows where no face.

        Raises ``MediaError`` for a file that cannot be decoded. A truncated clip raises
        after its decodable frames were processed; ``predict_paths`` keeps those rows
        and reports the problem instead.
        """
        return self._concat(list(self.iter_video(path, every=every, annotate=annotate)))

    def predict_image(
        self, image: np.ndarray | str | os.PathLike, name: str | None = None
    ) -> pd.DataFrame:
        """Rows for one image (array RGB/grey uint8, or a path): one per detected face.

        Unlike video frames (one tracked face per frame, the paper's rule), a still image
        reports every face the detector finds, largest first; no face -> one NaN row.
        """
        if isinstance(image, str | os.PathLike):
            file = str(Path(image).resolve())
            array = read_image(image, self._pixel_format)
        else:
            file = name or ARRAY_NAME
            array = self._as_pixel_format(np.asarray(image))
        return self._predict_still(array, file)

    def predict_paths(
        self,
        inputs: Iterable[str | os.PathLike],
        every: int = 1,
        annotate: str | os.PathLike | None = None,
        on_file: Callable[[str, pd.DataFrame], None] | None = None,
        progress: Callable[[str], None] | None = None,
        keep_predictions: bool = True,
        on_chunk: Callable[[int], None] | None = None,
    ) -> PredictionResult:
        """Predict on files, folders and globs; bad inputs are skipped and reported.

        ``annotate``: an output path (one input), or a folder / path template for
        several inputs (``<stem>_<input stem>.mp4``, images as ``.png``). ``on_file``
        receives each file's rows as soon as they are done (the CLI appends them to the
        CSV), so a long run keeps what it did when a later file fails. With
        ``keep_predictions=False`` the rows are not accumulated (memory stays flat over
        many files; ``result.predictions`` is empty, the summary is complete).
        ``progress(file)`` is called before each file, ``on_chunk(rows)`` after each
        batch of a video (for progress bars). An annotated copy that would overwrite an
        input raises ``OutputError`` (a ``ValueError``) before anything is decoded.
        """
        expanded = expand_inputs(inputs)
        problems = [Problem(arg, reason) for arg, reason in expanded.problems]
        targets: list[Path | None] = [None] * len(expanded.files)
        if annotate:
            targets = list(annotation_targets(annotate, expanded.files))
            # Before any decoding: an annotated copy written over an input destroys it.
            check_outputs(expanded.files, [("--annotate", t) for t in targets])
        tables: list[pd.DataFrame] = []
        summaries: list[pd.DataFrame] = []
        done: list[str] = []
        for path, target in zip(expanded.files, targets, strict=True):
            if progress:
                progress(str(path))
            chunks: list[pd.DataFrame] = []
            try:
                if is_image(path):
                    chunks.append(self.predict_image(path))
                    if target is not None:
                        self._annotate_image(path, chunks[0], target)
                else:
                    for chunk in self.iter_video(path, every=every, annotate=target):
                        chunks.append(chunk)
                        if on_chunk:
                            on_chunk(len(chunk))
            except MediaError as error:
                kept = sum(len(c) for c in chunks)
                problems.append(Problem(str(path), str(error), kept))
                if not kept:
                    continue
            table = self._concat(chunks)
            summaries.append(summarise(table, self.class_names))
            if keep_predictions:
                tables.append(table)
            done.append(str(path))
            if on_file:
                on_file(str(path), table)
        summary = (
            pd.concat(summaries, ignore_index=True)
            if summaries
            else summarise(empty_frame(self.class_names), self.class_names)
        )
        return PredictionResult(
            predictions=self._concat(tables),
            summary=summary,
            problems=problems,
            files=done,
        )

    def _annotate_image(self, path: Path, table: pd.DataFrame, target: Path) -> None:
        """Draw an image's faces and labels and save it (PNG) at ``target``."""
        image = read_image(path, "rgb24")
        annotation_sink(ImageWriter(target), self.class_names)([image], table)

    # ------------------------------------------------------------------ streaming core
    def iter_video(
        self,
        path: str | os.PathLike,
        every: int = 1,
        annotate: str | os.PathLike | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Yield the prediction table in chunks of at most ``batch_size`` frames."""
        file = str(Path(path).resolve())
        frames = iter_frames(path, every, self._pixel_format)
        if annotate is None:
            yield from self._stream(file, ((i, t, f, None) for i, t, f in frames))
            return
        # Two decoders in lockstep: the model gets exactly the training pixel format, the
        # annotation gets colour (decoding is cheap next to detection).
        colour = iter_frames(path, every, "rgb24", check_complete=False)
        fps = frame_rate(path) / every
        with VideoAnnotator(annotate, fps) as writer:
            sink = annotation_sink(writer, self.class_names)
            paired = ((i, t, f, c) for (i, t, f), (_, _, c) in zip(frames, colour, strict=False))
            yield from self._stream(file, paired, sink)

    def _stream(
        self,
        file: str,
        frames: Iterable[tuple[int, float, np.ndarray, np.ndarray | None]],
        sink: FrameSink | None = None,
    ) -> Iterator[pd.DataFrame]:
        tracker = FaceTracker(self.face_settings, self._detector) if self.detect else None
        pending = _Pending()
        last_fresh = -np.inf
        try:
            for index, timestamp, frame, colour_frame, found in self._ahead.detect(frames):
                if tracker is None:
                    box, detection = None, "fresh"
                    region = _whole_frame(frame)
                else:
                    box, fresh = tracker.update_with_boxes(found)
                    if fresh:
                        last_fresh = timestamp
                    elif box is not None and timestamp - last_fresh > self.max_fallback_s:
                        box = None  # the face has been gone too long: no stale box
                    detection = "none" if box is None else ("fresh" if fresh else "fallback")
                    region = box
                pending.frame.append(index)
                pending.timestamp.append(timestamp)
                if region is None:
                    pending.boxes.append(_NO_BOX)
                    pending.crop_slot.append(-1)
                else:
                    pending.boxes.append(tuple(float(v) for v in region))
                    pending.crop_slot.append(len(pending.crops))
                    pending.crops.append(crop_face(frame, box, self.face_settings))
                pending.detection.append(detection)
                if colour_frame is not None:
                    pending.images.append(colour_frame)
                if len(pending) >= self.batch_size:
                    yield self._flush(file, pending, sink)
                    pending = _Pending()
        except MediaError:
            # A truncated clip fails after its last good frame: keep what was decoded.
            if len(pending):
                yield self._flush(file, pending, sink)
            raise
        if len(pending):
            yield self._flush(file, pending, sink)

    def _flush(self, file: str, pending: _Pending, sink: FrameSink | None) -> pd.DataFrame:
        n = len(pending)
        proba = np.full((n, len(self.class_names)), np.nan)
        heads = {}
        if pending.crops:
            slots = np.asarray(pending.crop_slot) >= 0
            crops = np.stack(pending.crops)
            proba[slots], heads = self._probas(crops, slots, n)
        table = build_frame(
            self.class_names,
            file=[file] * n,
            frame=np.asarray(pending.frame),
            timestamp=np.asarray(pending.timestamp),
            boxes=np.asarray(pending.boxes),
            detection=pending.detection,
            proba=proba,
        )
        table = self._add_head_columns(table, heads, n)
        if sink is not None:
            sink(pending.images, table)
        return table

    def _predict_still(self, image: np.ndarray, file: str) -> pd.DataFrame:
        if not self.detect:
            boxes: np.ndarray = np.asarray([_whole_frame(image)], dtype=np.float64)
            crops = [crop_face(image, None, self.face_settings)]
        else:
            boxes = self._ahead.detector().detect(image).astype(np.float64)
            crops = [crop_face(image, tuple(int(v) for v in b), self.face_settings) for b in boxes]
        n = max(1, len(boxes))
        proba = np.full((n, len(self.class_names)), np.nan)
        box_array = np.full((n, 4), np.nan)
        heads = {}
        if crops:
            proba[:], heads = self._probas(np.stack(crops), np.ones(n, bool), n)
            box_array[:] = boxes
        table = build_frame(
            self.class_names,
            file=[file] * n,
            frame=np.zeros(n, np.int64),
            timestamp=np.zeros(n),
            boxes=box_array,
            detection=["fresh" if crops else "none"] * n,
            proba=proba,
        )
        return self._add_head_columns(table, heads, n)

    def _probas(
        self, crops: np.ndarray, slots: np.ndarray, n: int
    ) -> tuple[np.ndarray, dict[str, tuple[tuple[str, ...], np.ndarray]]]:
        """The model's probabilities on ``crops`` and, for ``--head all``, each head's on
        the rows with a face (NaN elsewhere). Each head runs once: the combination is the
        mix of the heads' own probabilities (``LoadedModel.predict_proba``'s rule)."""
        if not self.head_columns:
            return self.model.predict_proba(crops), {}
        raw = self.model.predict_heads(crops)
        heads = {}
        for name, (classes, p) in raw.items():
            full = np.full((n, len(classes)), np.nan)
            full[slots] = p
            heads[name] = (classes, full)
        return self.model.mix(raw), heads

    def _add_head_columns(self, table: pd.DataFrame, heads: dict, n: int) -> pd.DataFrame:
        """Append every head's columns (``p_<class>@<head>``, ``emotion@<head>``)."""
        if not self.head_columns:
            return table
        for name in self.model.head_names:
            classes, p = heads.get(name) or (
                self.model.with_head(name).class_names,
                np.full((n, len(self.model.with_head(name).class_names)), np.nan),
            )
            table = add_head_columns(table, name, classes, p)
        return table

    def _as_pixel_format(self, image: np.ndarray) -> np.ndarray:
        """An in-memory image (RGB or grey uint8) in the decoder format used for training."""
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(
                f"expected a uint8 (h, w) or (h, w, 3) image, got {image.dtype} {image.shape}"
            )
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if self._pixel_format == "gray" and image.ndim == 3:
            import cv2

            return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return image

    def _concat(self, tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
        if not tables:
            return self._add_head_columns(empty_frame(self.class_names), {}, 0)
        if len(tables) == 1:
            return tables[0].reset_index(drop=True)
        return pd.concat(tables, ignore_index=True)


# ---------------------------------------------------------------------- helpers


def _whole_frame(frame: np.ndarray) -> tuple[int, int, int, int]:
    return (0, 0, int(frame.shape[1]), int(frame.shape[0]))
