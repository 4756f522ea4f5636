"""Face-pipeline settings: one frozen dataclass, serialisable, with a stable cache key."""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from dataclasses import dataclass, replace

from pathnet_fer.settings_dict import SettingsDict

# Bump when a change to the pipeline alters crops made from the same settings, so that
# every cache built by older code is rebuilt instead of silently reused.
PIPELINE_VERSION = 1

COLOURS = ("grey", "rgb")
MAX_SIZE = 1024  # pixels per side: FER-2013 at 1024 grey is 31 GB of crops
MULTI_FACE_POLICIES = ("previous", "nearest", "largest")


@dataclass(frozen=True)
class FaceSettings(SettingsDict):
    """How faces are found and cropped.

    - ``size``: side of the square crop in pixels (48 matches CK+48 and FER-2013).
    - ``colour``: ``"grey"`` (1 channel) or ``"rgb"``.
    - ``margin``: fraction of the detected box's side added on each side before cropping
      (0 = the Haar box itself, which is already about as tight as CK+48/FER-2013 crops).
    - ``every``: keep every k-th decoded frame (1 = every frame, the paper's setting).
    - ``detect``: run the face detector; ``None`` = the dataset's default (off for
      pre-cropped datasets such as CK+48 and FER-2013, on otherwise).
    - ``multi_face``: what to do when a frame shows several faces. ``"previous"`` (the
      paper's rule: reuse the previous frame's face, like a frame with no face),
      ``"nearest"`` (the face closest to the previous one; the largest when there is no
      previous face) or ``"largest"``.
    - ``detect_side``: frames are downscaled so that their longer side is at most this
      many pixels before detection (0 = detect at full resolution). Boxes are mapped back
      to full resolution; crops are always cut from the full-resolution frame.
    - ``recheck_every``: while a face is followed, a frame first searches near the previous
      face (within half a face width, at 0.75-1.33 times its size), and the full frame is
      searched at least every ``recheck_every`` frames and whenever the nearby search
      finds no face or several. 1 = full-frame detection on every frame (the strictest
      reading of the paper; about 3x slower on talking-head videos).
    - ``max_gap``: at most this many consecutive frames reuse a previous face (or, before
      the first detection, the first face); frames further from any detection are
      dropped and counted (``n_dropped``). 0 = no limit, the paper's rule, under which a
      face that leaves the picture leaves crops of whatever is there.
    - ``min_face``: smallest face searched for, as a fraction of the frame's shorter side
      (0 = the cascade's own 24 px minimum in the detection image).
    - ``scale_factor``, ``min_neighbors``: passed to ``detectMultiScale`` (OpenCV defaults).
    - ``blur``: Gaussian sigma, in pixels of the final ``size`` x ``size`` crop, applied to
      every finished crop (training datasets and prediction alike; 0 = off, the crops
      are exactly those made without the setting, under the same cache key).
      Optional, with no measured benefit on the current data: it was added to match a
      blurred copy of FER-2013's training split that has since been replaced by the
      sharp originals (no train/test gap left), and the one demo trial with it was a
      negative result. Kept because model files record it (older files load with it);
      see docs/faces.md ("The ``blur`` setting").
    """

    size: int = 48
    colour: str = "grey"
    margin: float = 0.0
    every: int = 1
    detect: bool | None = None
    multi_face: str = "previous"
    detect_side: int = 320
    recheck_every: int = 10
    max_gap: int = 0
    min_face: float = 0.0
    scale_factor: float = 1.1
    min_neighbors: int = 3
    blur: float = 0.0

    def __post_init__(self) -> None:
        if not 8 <= self.size <= MAX_SIZE:
            raise ValueError(
                f"size must be 8 to {MAX_SIZE} pixels, got {self.size} (one crop is size x "
                "size pixels, and a dataset holds tens of thousands)"
            )
        if self.colour not in COLOURS:
            raise ValueError(f"colour must be one of {COLOURS}, got {self.colour!r}")
        if not 0.0 <= self.margin <= 2.0:
            raise ValueError(
                f"margin must be within [0, 2] (fraction of the box), got {self.margin}"
            )
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.multi_face not in MULTI_FACE_POLICIES:
            raise ValueError(
                f"multi_face must be one of {MULTI_FACE_POLICIES}, got {self.multi_face!r}"
            )
        if self.detect_side != 0 and self.detect_side < 48:
            raise ValueError(
                f"detect_side must be 0 (full resolution) or >= 48, got {self.detect_side}"
            )
        if self.recheck_every < 1:
            raise ValueError(f"recheck_every must be >= 1, got {self.recheck_every}")
        if self.max_gap < 0:
            raise ValueError(f"max_gap must be >= 0 (0 = no limit), got {self.max_gap}")
        if not 0.0 <= self.min_face < 1.0:
            raise ValueError(f"min_face must be within [0, 1), got {self.min_face}")
        if self.scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {self.scale_factor}")
        if isinstance(self.blur, bool) or not isinstance(self.blur, numbers.Real):
            raise ValueError(f"blur must be a number (Gaussian sigma in pixels), got {self.blur!r}")
        if not (math.isfinite(self.blur) and self.blur >= 0.0):
            raise ValueError(
                f"blur must be a finite sigma >= 0 in pixels of the crop (0 = off), got {self.blur}"
            )
        object.__setattr__(self, "blur", float(self.blur))  # 2 and 2.0: one cache key

    @property
    def channels(self) -> int:
        return 3 if self.colour == "rgb" else 1

    def resolved(self, pre_cropped: bool) -> FaceSettings:
        """These settings with ``detect`` decided for a dataset (None -> not pre-cropped)."""
        if self.detect is not None:
            return self
        return replace(self, detect=not pre_cropped)

    def key(self) -> str:
        """Stable short hash of everything that changes the crops (cache directory name).

        ``detect`` must be resolved first (see :meth:`resolved`), so that "default" and the
        explicit equivalent share one cache.
        """
        fields = self.to_dict()
        if fields["blur"] == 0.0:
            del fields["blur"]  # off: the key (and cache) of the crops made before it existed
        payload = json.dumps({"v": PIPELINE_VERSION, **fields}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:12]
