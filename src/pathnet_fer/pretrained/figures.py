"""What ``pathnet-fer pretrained build`` measures of the model it ships, and how.

Each figure is what ``pathnet-fer evaluate`` prints for one dataset (``FIGURES``, each with
the command that reproduces it); the seeded sample of FER-2013 test faces
(``sample_accuracy``) is what tests/test_pretrained.py checks the shipped file against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pathnet_fer.data.emotions import class_names
from pathnet_fer.data.registry import get_adapter
from pathnet_fer.datasets.loading import DataMissingError, face_settings_for
from pathnet_fer.faces.preprocess import preprocess_samples
from pathnet_fer.formats.model_file import load_model
from pathnet_fer.predict.evaluate import evaluate_model
from pathnet_fer.scoring.on_faces import evaluate_faces

SAMPLE_SIZE, SAMPLE_SEED = 600, 0
SHIPPED_SPLITS = "datasets.fer2013.splits=[test]"


@dataclass(frozen=True)
class FigureSpec:
    """A dataset the shipped model is scored on, as ``pathnet-fer evaluate`` scores it."""

    key: str
    dataset: str
    overrides: tuple[str, ...]
    what: str

    @property
    def command(self) -> str:
        sets = "".join(f" --set '{o}'" for o in self.overrides)
        return f"pathnet-fer evaluate --dataset {self.dataset}{sets}"


FIGURES = (
    FigureSpec("fer2013-test", "fer2013", (SHIPPED_SPLITS,),
               "Held out, FER-2013 test split (never trained on)"),
    FigureSpec("ckplus48", "ckplus48", (), "Zero-shot, CK+48, every face (never seen)"),
    FigureSpec("jaffe", "jaffe", (), "Zero-shot, JAFFE, every face (never seen)"),
    FigureSpec("crema-d-sample", "crema-d-sample", (),
               "Zero-shot, CREMA-D sample, 5 six-class clips of actor 1001 (never seen)"),
)  # fmt: skip


def heldout_sample(
    config: Any, n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED, dataset: str = "fer2013"
) -> Any:
    """A seeded sample of ``n`` faces of ``dataset``'s shipped test split (its classes
    only, e.g. FER-2013 without neutral), cropped as the config crops it (FaceDataset)."""

    spec = config.datasets[dataset]
    adapter = get_adapter(spec.adapter)
    samples = adapter.scan(config.dataset_root(dataset), keep_neutral=spec.keep_neutral).samples
    test = samples[samples["split"].eq("test")]
    test = test[test["emotion"].isin(class_names(spec.keep_neutral))].sort_values("clip")
    if len(test) < n:
        raise ValueError(f"{dataset} has {len(test)} test faces, fewer than the sample's {n}")
    rows = np.sort(np.random.default_rng(seed).choice(len(test), n, replace=False))
    settings = face_settings_for(config, dataset).resolved(bool(adapter.pre_cropped))
    return preprocess_samples(
        test.iloc[rows], adapter.name, settings, cache_dir=config.cache_dir, workers=1,
        keep_neutral=spec.keep_neutral, progress=False,
    )  # fmt: skip


def sample_accuracy(
    model: Any, config: Any, n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED
) -> float:
    """Frame accuracy of a model (a path or LoadedModel) on ``heldout_sample``."""

    model = load_model(model) if isinstance(model, str | Path) else model
    faces = heldout_sample(config, n, seed)
    result = evaluate_faces(model, faces.images, faces.frames, faces.class_names)
    return float(result.frame["accuracy"])


def measure(
    path: Path, specs: Sequence[FigureSpec] = FIGURES, log: Callable[[str], None] = print
) -> dict[str, dict[str, Any]]:
    """Score the model file on each dataset of ``specs`` present under the data root
    (``evaluate_model``, exactly what each spec's command runs)."""

    out = {}
    for spec in specs:
        try:
            result = evaluate_model(path, spec.dataset, overrides=spec.overrides)
        except DataMissingError as err:
            log(f"  {spec.key}: not measured ({str(err).splitlines()[0]})")
            continue
        frame, majority = result.frame, result.votes["majority"].clip
        out[spec.key] = {
            "what": spec.what,
            "command": spec.command,
            "faces": len(result.frames),
            "clips": len(result.clips),
            "accuracy": float(frame["accuracy"]),
            "macro_f1": float(frame["macro_f1"]),
            "uar": float(frame["uar"]),
            "top_share": float(frame["top_share"]),
            "top_emotion": str(result.frames["pred"].value_counts().index[0]),
            "confidence": float(frame["confidence"]),
            "clip_majority_correct": int(result.clips["majority_correct"].sum()),
            "clip_majority_accuracy": float(majority["accuracy"]),
        }
        log(f"  {spec.key}: accuracy {out[spec.key]['accuracy']:.3f} on {len(result.frames)} faces")
    return out
