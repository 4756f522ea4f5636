"""Face pipeline: video -> frames -> Viola-Jones faces (previous-face fallback) -> cached crops.

Public names (see docs/faces.md): ``FaceSettings``, ``FaceDataset``, ``preprocess_dataset``,
``iter_frames``, ``FaceDetector``, ``FaceTracker``, ``crop_face``, ``MediaError``.
"""

from pathnet_fer.faces.crop import crop_face
from pathnet_fer.faces.dataset import FaceDataset
from pathnet_fer.faces.detector import FaceDetector
from pathnet_fer.faces.preprocess import preprocess_dataset, preprocess_samples
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.faces.tracking import FaceTracker
from pathnet_fer.faces.video import MediaError, iter_frames

__all__ = [
    "FaceDataset",
    "FaceDetector",
    "FaceSettings",
    "FaceTracker",
    "MediaError",
    "crop_face",
    "iter_frames",
    "preprocess_dataset",
    "preprocess_samples",
]
