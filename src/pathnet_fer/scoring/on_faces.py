"""A model scored on labelled face crops: frame and clip tables, the printed report.

Classes are matched **by emotion name** (``canonical_emotion``: ``happy`` = ``happiness``).
The scores live in the union of both label spaces: a dataset class the model lacks is a
column the model never predicts, so its samples count as wrong (and are reported); a
class without samples is listed as absent from the data. Used by ``pathnet-fer evaluate``
(predict) and by a study's cross-dataset table (experiments), which is why it sits below
both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathnet_fer.data.emotions import canonical_emotion
from pathnet_fer.formats.loaded_model import ModelFileError, check_compatible
from pathnet_fer.scoring.metrics import Evaluation, clip_vote, evaluate_proba, reliability_table
from pathnet_fer.scoring.reliability_figure import calibration_figure

DEFAULT_BATCH_SIZE = 256
FACE_KEYS_IGNORED = ("detect", "every")
"""Face settings a model and a dataset may differ in without a note: detection is the
dataset's business (pre-cropped or not), and frame subsampling changes no crop."""


class EvaluationError(ValueError):
    """Input that cannot be evaluated (unknown dataset, crops the model cannot take)."""


# --------------------------------------------------------------------------- classes
def emotion_key(name: str) -> str:
    """The canonical emotion of a class name (``happy`` -> ``happiness``), else the
    lower-cased name itself."""
    try:
        return canonical_emotion(name) or name.strip().lower()
    except KeyError:
        return name.strip().lower()


@dataclass(frozen=True)
class ClassMapping:
    """The model's and the dataset's classes matched by emotion name.

    ``classes``: the scoring label space, the model's classes first (in its order),
    then the dataset classes the model lacks. ``model_index[i]`` / ``data_index[j]``:
    the position of model class ``i`` / dataset class ``j`` in ``classes``.
    """

    classes: tuple[str, ...]
    model_classes: tuple[str, ...]
    data_classes: tuple[str, ...]
    model_index: tuple[int, ...]
    data_index: tuple[int, ...]
    not_in_model: tuple[str, ...]  # dataset classes with samples the model cannot predict
    absent_from_data: tuple[str, ...]  # classes of either side without a sample

    @classmethod
    def build(
        cls, model_classes: Sequence[str], data_classes: Sequence[str], present: Sequence[str]
    ) -> ClassMapping:
        """``present``: the dataset classes that have at least one sample."""
        keys = [emotion_key(c) for c in model_classes]
        if len(set(keys)) != len(keys):
            raise EvaluationError(f"model classes {list(model_classes)} name an emotion twice")
        classes = list(model_classes)
        data_index = []
        for name in data_classes:
            key = emotion_key(name)
            if key in keys:
                data_index.append(keys.index(key))
            else:
                keys.append(key)
                classes.append(name)
                data_index.append(len(classes) - 1)
        present_keys = {emotion_key(c) for c in present}
        n_model = len(model_classes)
        return cls(
            classes=tuple(classes),
            model_classes=tuple(model_classes),
            data_classes=tuple(data_classes),
            model_index=tuple(range(n_model)),
            data_index=tuple(data_index),
            not_in_model=tuple(c for c in classes[n_model:] if emotion_key(c) in present_keys),
            absent_from_data=tuple(c for c in classes if emotion_key(c) not in present_keys),
        )

    def expand(self, model_proba: np.ndarray) -> np.ndarray:
        """Model probabilities ``(n, model classes)`` -> ``(n, classes)``; classes the
        model lacks get probability 0 (never predicted)."""
        out = np.zeros((len(model_proba), len(self.classes)))
        out[:, list(self.model_index)] = model_proba
        return out

    def labels(self, data_labels: np.ndarray) -> np.ndarray:
        """Dataset label indices -> indices into ``classes``."""
        return np.asarray(self.data_index, dtype=np.int64)[np.asarray(data_labels, np.int64)]


# --------------------------------------------------------------------------- result
@dataclass
class DatasetEvaluation:
    """A model scored on one dataset: per-frame and per-clip tables and the summary."""

    model_path: str
    dataset: str
    mapping: ClassMapping
    frames: pd.DataFrame  # one row per face crop
    clips: pd.DataFrame  # one row per clip
    votes: dict[str, Evaluation]  # "majority" / "mean_proba" -> scores (frame part equal)
    notes: list[str] = field(default_factory=list)
    description: dict[str, str] = field(default_factory=dict)

    @property
    def frame(self) -> dict[str, float]:
        return self.votes["majority"].frame

    def summary(self) -> pd.DataFrame:
        """One wide row: counts, frame and both clip-level scores, collapse, calibration."""
        frame, clips = self.frame, self.clips
        row: dict[str, Any] = {
            "model": self.model_path,
            "dataset": self.dataset,
            "n_frames": len(self.frames),
            "n_clips": len(clips),
            "frame_correct": int(self.frames["correct"].sum()),
        }
        row.update({f"frame_{k}": v for k, v in frame.items()})
        row["frame_top_emotion"] = _top(self.frames["pred"])
        row["frame_true_top_share"] = _share(self.frames["true"])
        for vote, ev in self.votes.items():
            row[f"clip_{vote}_correct"] = int(clips[f"{vote}_correct"].sum())
            row.update({f"clip_{vote}_{k}": v for k, v in ev.clip.items()})
            row[f"clip_{vote}_top_emotion"] = _top(clips[vote])
        row["clip_mean_proba_confidence"] = float(clips["mean_proba_p"].mean())
        row["not_in_model"] = " ".join(self.mapping.not_in_model)
        row["absent_from_data"] = " ".join(self.mapping.absent_from_data)
        return pd.DataFrame([row])

    def markdown(self) -> str:
        """The printed report: what was scored, the scores, collapse, calibration, clips."""
        m, frame, clips = self.mapping, self.frame, self.clips
        n_frames, n_clips = len(self.frames), len(clips)
        lines = [f"# Evaluation of `{Path(self.model_path).name}` on `{self.dataset}`", ""]
        lines += [f"{k}: {v}" for k, v in self.description.items()]
        lines += [
            "",
            f"Classes matched by emotion name: model {', '.join(m.model_classes)}; "
            f"dataset {', '.join(m.data_classes)}.",
        ]
        if m.not_in_model:
            counts = ", ".join(
                f"{c} ({_count((clips['true'] == c).sum(), 'clip')}, "
                f"{_count((self.frames['true'] == c).sum(), 'frame')})"
                for c in m.not_in_model
            )
            lines.append(f"Not a class of the model (always counted wrong): {counts}.")
        if m.absent_from_data:
            lines.append(f"Absent from the data: {', '.join(m.absent_from_data)}.")
        lines += [
            "",
            "| level | accuracy | correct | macro-F1 | UAR | top predicted (share) |",
            "|---|---|---|---|---|---|",
            f"| frame | {frame['accuracy']:.3f} | {int(self.frames['correct'].sum())}/{n_frames} "
            f"| {frame['macro_f1']:.3f} | {frame['uar']:.3f} "
            f"| {_top(self.frames['pred'])} ({frame['top_share']:.2f}) |",
        ]
        for vote, title in (("majority", "majority vote"), ("mean_proba", "mean-proba vote")):
            c = self.votes[vote].clip
            lines.append(
                f"| clip, {title} | {c['accuracy']:.3f} | "
                f"{int(clips[f'{vote}_correct'].sum())}/{n_clips} | {c['macro_f1']:.3f} "
                f"| {c['uar']:.3f} | {_top(clips[vote])} ({c['top_share']:.2f}) |"
            )
        gap = frame["confidence"] - frame["accuracy"]
        clip_conf = float(clips["mean_proba_p"].mean())
        clip_gap = clip_conf - self.votes["mean_proba"].clip["accuracy"]
        lines += [
            "",
            f"Collapse check: the most frequent predicted emotion ({_top(self.frames['pred'])}) "
            f"takes {frame['top_share']:.0%} of the frames; the most frequent true emotion "
            f"({_top(self.frames['true'])}) {_share(self.frames['true']):.0%}.",
            f"Calibration: mean max-probability {frame['confidence']:.3f} vs accuracy "
            f"{frame['accuracy']:.3f} per frame ({_calibration(gap)}); per clip, the mean "
            f"probability of the mean-proba vote {clip_conf:.3f} vs its accuracy "
            f"{self.votes['mean_proba'].clip['accuracy']:.3f} ({_calibration(clip_gap)}).",
        ]
        lines += [f"Note: {n}" for n in self.notes]
        lines += [
            "",
            "## Per clip",
            "",
            "| clip | subject | true | majority vote | mean-proba vote | frames | mean max-prob |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in clips.itertuples():
            lines.append(
                f"| {r.clip} | {r.subject} | {r.true} | {_mark(r.majority, r.majority_correct)} "
                f"| {_mark(r.mean_proba, r.mean_proba_correct)} | {r.n_frames} "
                f"| {r.mean_max_proba:.3f} |"
            )
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """``frames.csv``, ``clips.csv``, ``summary.csv``, ``summary.md``, and the
        calibration curve (``calibration.csv``, ``calibration.png`` + ``.pdf``)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "frames": out / "frames.csv",
            "clips": out / "clips.csv",
            "summary": out / "summary.csv",
            "markdown": out / "summary.md",
        }
        self.frames.to_csv(paths["frames"], index=False)
        self.clips.to_csv(paths["clips"], index=False)
        self.summary().to_csv(paths["summary"], index=False)
        paths["markdown"].write_text(self.markdown())
        curve = reliability_table(self.frames["p_max"], self.frames["correct"])
        paths["calibration"] = out / "calibration.csv"
        curve.to_csv(paths["calibration"], index=False)
        title = f"{Path(self.model_path).name} on {self.dataset} (frames)"
        paths["calibration_figure"] = calibration_figure(curve, out / "calibration.png", title)
        return paths


def _top(values: pd.Series) -> str:
    counts = values.astype(str).value_counts()
    return str(counts.index[0]) if len(counts) else "-"


def _share(values: pd.Series) -> float:
    counts = values.astype(str).value_counts()
    return float(counts.iloc[0] / counts.sum()) if len(counts) else float("nan")


def _count(n: int, what: str) -> str:
    return f"{int(n)} {what}{'' if int(n) == 1 else 's'}"


def _mark(pred: str, correct: bool) -> str:
    return f"{pred} ✓" if correct else f"{pred} ✗"


def _calibration(gap: float) -> str:
    if abs(gap) < 0.05:
        return "about calibrated"
    return f"{'over' if gap > 0 else 'under'}-confident by {abs(gap):.2f}"


# --------------------------------------------------------------------------- scoring
def evaluate_faces(
    model: Any,
    images: np.ndarray,
    frames: pd.DataFrame,
    data_classes: Sequence[str],
    *,
    model_path: str = "",
    dataset: str = "",
    batch_size: int = DEFAULT_BATCH_SIZE,
    proba: np.ndarray | None = None,
) -> DatasetEvaluation:
    """Score a ``LoadedModel`` on face crops with their ``FaceDataset.frames`` rows
    (``clip``, ``subject``, ``label``, optionally ``frame_index`` and ``fallback``);
    ``proba``: the model's probabilities on these crops when already computed."""
    if len(images) == 0:
        raise EvaluationError(f"dataset {dataset!r} has no face crops to score")
    if proba is None:
        proba = np.concatenate([model.predict_proba(images[i : i + batch_size])
                                for i in range(0, len(images), batch_size)])  # fmt: skip
    labels = frames["label"].to_numpy(np.int64)
    present = [data_classes[i] for i in np.unique(labels)]
    mapping = ClassMapping.build(model.class_names, data_classes, present)
    full = mapping.expand(proba)
    y = mapping.labels(labels)
    clips = frames["clip"].astype(str).to_numpy()
    n = len(mapping.classes)
    votes = {v: evaluate_proba(full, y, clips, n, v) for v in ("majority", "mean_proba")}
    names = np.asarray(mapping.classes, dtype=object)
    pred = full.argmax(1)
    table = pd.DataFrame(
        {
            "clip": clips,
            "subject": frames["subject"].astype(str).to_numpy(),
            "frame_index": (
                frames["frame_index"].to_numpy(np.int64)
                if "frame_index" in frames
                else np.zeros(len(frames), np.int64)
            ),
            "true": names[y],
            "pred": names[pred],
            "correct": pred == y,
            "p_max": proba.max(1),
        }
    )
    if "fallback" in frames:
        table["fallback"] = frames["fallback"].to_numpy(bool)
    for i, c in enumerate(model.class_names):
        table[f"p_{c}"] = proba[:, i]
    per_clip = _clip_table(full, y, clips, table, names)
    return DatasetEvaluation(
        model_path=model_path,
        dataset=dataset,
        mapping=mapping,
        frames=table,
        clips=per_clip,
        votes=votes,
    )


def _clip_table(
    proba: np.ndarray, y: np.ndarray, clips: np.ndarray, frames: pd.DataFrame, names: np.ndarray
) -> pd.DataFrame:
    """One row per clip: truth, both votes (``clip_vote``), frames, mean max-probability
    and the mean probability of the mean-proba vote's emotion (``mean_proba_p``)."""
    ids, true, majority = clip_vote(proba, y, clips, "majority")
    _, _, mean_vote = clip_vote(proba, y, clips, "mean_proba")
    group = frames.groupby("clip", sort=True)
    mean_proba = pd.DataFrame(proba).groupby(clips, sort=True).mean().loc[ids].to_numpy()
    return pd.DataFrame(
        {
            "clip": ids,
            "subject": group["subject"].first().loc[ids].to_numpy(),
            "true": names[true],
            "majority": names[majority],
            "mean_proba": names[mean_vote],
            "n_frames": group.size().loc[ids].to_numpy(np.int64),
            "mean_max_proba": group["p_max"].mean().loc[ids].to_numpy(),
            "mean_proba_p": mean_proba[np.arange(len(ids)), mean_vote],
            "majority_correct": majority == true,
            "mean_proba_correct": mean_vote == true,
        }
    )


def check_crops(model: Any, settings: Any, dataset: str) -> None:
    """Refuse face settings whose crops the model's input layer cannot take."""
    try:
        check_compatible(model.input, settings)
    except ModelFileError:
        got = f"{int(settings.size)}x{int(settings.size)} {settings.colour}"
        raise EvaluationError(
            f"the model expects {model.input.describe()}, but dataset {dataset!r} is cropped "
            f"to {got} by its face settings; evaluate with the model's crop size "
            f"(--set faces.size={model.input.size} --set faces.colour={model.input.colour}, "
            f"or datasets.{dataset}.faces.* in the config) or use a model trained on {got} "
            "crops"
        ) from None


def face_setting_notes(model: Any, settings: Any) -> list[str]:
    """A note per face setting (other than size, colour, detection) in which the
    dataset's crops differ from the model's training crops."""
    mine, theirs = model.face_settings.to_dict(), settings.to_dict()
    diffs = [
        f"{k} {mine.get(k)!r} -> {theirs.get(k)!r}"
        for k in sorted(set(mine) | set(theirs))
        if k not in (*FACE_KEYS_IGNORED, "size", "colour") and mine.get(k) != theirs.get(k)
    ]
    if not diffs:
        return []
    return [
        "the dataset is cropped with other face settings than the model was trained with "
        f"({'; '.join(diffs)}): scores may be lower than with its own crops."
    ]
