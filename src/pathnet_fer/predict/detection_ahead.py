"""Face detection a few frames ahead of the frame being classified, on a thread pool.

Detection is independent per frame (only the choice among boxes depends on the previous
face), so a bounded window of frames is detected at once (OpenCV releases the GIL) and
consumed in order: results never depend on the number of threads, memory stays bounded.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from pathnet_fer.faces.detector import CASCADE_FILE, FaceDetector
from pathnet_fer.faces.settings import FaceSettings


class DetectionAhead:
    """Detections of frames in order, ``workers`` threads at once (0: no detection)."""

    def __init__(self, settings: FaceSettings, workers: int) -> None:
        self.face_settings = settings
        self.workers = workers
        self._local = threading.local()

    def detect(
        self, frames: Iterable[tuple[int, float, np.ndarray, np.ndarray | None]]
    ) -> Iterator[tuple[int, float, np.ndarray, np.ndarray | None, np.ndarray | None]]:
        """Frames in order with their detections, detected ``workers`` frames at a time.

        Detection is independent per frame (only the choice among boxes depends on the
        previous face), so a bounded window of frames is detected by a thread pool
        (OpenCV releases the GIL) and consumed in order: memory stays bounded.
        """
        if self.workers == 0:
            for item in frames:
                yield (*item, None)
            return
        if self.workers == 1:
            detector = self.detector()
            for item in frames:
                yield (*item, detector.detect(item[2]))
            return
        from concurrent.futures import ThreadPoolExecutor

        window: deque = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="detect") as pool:
            try:
                for item in frames:
                    window.append((item, pool.submit(self._detect_in_thread, item[2])))
                    if len(window) > 2 * self.workers:
                        done, future = window.popleft()
                        yield (*done, future.result())
            except Exception:  # a decoding error: the frames in flight are good ones
                while window:
                    done, future = window.popleft()
                    yield (*done, future.result())
                raise
            while window:
                done, future = window.popleft()
                yield (*done, future.result())

    def _detect_in_thread(self, frame: np.ndarray) -> np.ndarray:
        return self.detector().detect(frame)

    def detector(self) -> FaceDetector:
        """One detector per thread: an OpenCV cascade is not safe to share across threads."""
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = FaceDetector(self.face_settings)
            cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / CASCADE_FILE))
            if cascade.empty():  # pragma: no cover - load_cascade above already checked
                raise RuntimeError("cannot load the Haar cascade")
            detector.cascade = cascade
            self._local.detector = detector
        return detector
