"""Score a model file on every face of a labelled dataset: ``pathnet-fer evaluate``.

The dataset's crops come from the experiment pipeline (``load_dataset``: the adapter,
the config's face settings, the crop cache), so a model is scored on exactly the faces
an experiment's test folds hold. Scores are those of ``experiments.evaluation``
(``evaluate_proba``, ``clip_vote``): frame level, and clip level by majority vote and by
mean-probability vote.

Classes are matched **by emotion name** (``canonical_emotion``: ``happy`` = ``happiness``).
The scores live in the union of both label spaces: a dataset class the model lacks is a
column the model never predicts, so its samples count as wrong (and are reported); a
class without samples is listed as absent from the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathnet_fer.experiments.evaluation import Evaluation, clip_vote, evaluate_proba

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
    from pathnet_fer.data.emotions import canonical_emotion

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
        from pathnet_fer.experiments.evaluation import reliability_table
        from pathnet_fer.experiments.figures import calibration_figure

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


# --------------------------------------------------------------------------- datasets
def dataset_config(
    name: str,
    model: Any,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    root: str | Path | None = None,
    keep_neutral: bool = False,
) -> Any:
    """The ``ExperimentConfig`` that defines dataset ``name``.

    With ``config``: that config (``--set`` overrides applied); ``name`` must be one of
    its ``datasets:``. Without: a one-dataset config whose ``name`` is an adapter
    (``crema-d``) or its shared-data folder (``crema-d-sample``), cropped with the
    model's own face settings (detection as the dataset needs).
    """
    import json

    from pathnet_fer.experiments.config import apply_overrides, build_config, load_raw

    extra = []
    if root is not None:
        extra.append(f"datasets.{name}.root={json.dumps(str(Path(root).expanduser()))}")
    if keep_neutral:
        extra.append(f"datasets.{name}.keep_neutral=true")
    if config is not None:
        raw = load_raw(config)
        defined = list(raw.get("datasets") or {})
        if name not in defined:
            raise EvaluationError(
                f"dataset {name!r} is not defined under datasets: in {config} "
                f"(defined: {', '.join(defined) or 'none'})"
            )
    else:
        adapter = _adapter_for(name)
        if root is None and adapter.default_folder is None:
            raise EvaluationError(
                f"{adapter.name} has no copy under the shared data root: give its folder "
                f"with --root DIR (layout: {adapter.layout})"
            )
        faces = {**model.face_settings.to_dict(), "detect": None}
        raw = {
            "name": "evaluate",
            "datasets": {name: {"adapter": adapter.name, "root": adapter.default_folder or ""}},
            "faces": faces,
            "sets": [{"source": name, "destination": name}],
            "save_models": "none",
        }
    return build_config(apply_overrides(raw, [*overrides, *extra]))


def _adapter_for(name: str) -> Any:
    """An adapter by name or alias (``crema-d``, ``ckplus``) or by its shared-data
    folder (``crema-d-sample``)."""
    from pathnet_fer.data.registry import ADAPTERS, UnknownDatasetError, get_adapter

    for adapter in ADAPTERS.values():
        if adapter.default_folder and adapter.default_folder == name:
            return adapter
    try:
        return get_adapter(name)
    except UnknownDatasetError as err:
        folders = [a.default_folder for a in ADAPTERS.values() if a.default_folder]
        raise EvaluationError(
            f"{err} (or a shared-data folder: {', '.join(folders)}); datasets of an "
            "experiment config: --config CFG"
        ) from None


def check_crops(model: Any, settings: Any, dataset: str) -> None:
    """Refuse face settings whose crops the model's input layer cannot take."""
    from pathnet_fer.formats.model_file import ModelFileError, check_compatible

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


def evaluate_model(
    model_path: str | Path,
    dataset: str,
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    root: str | Path | None = None,
    keep_neutral: bool = False,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    progress: bool = False,
    head: str = "combined",
) -> DatasetEvaluation:
    """Load a model file and score it on every face of a dataset (see module doc);
    ``head``: which head of a chain's heads model answers (``combined``: their mix).

    Raises ``ModelFileError`` (bad model file, unknown head), ``EvaluationError`` /
    ``ConfigError`` (unknown dataset, crops the model cannot take) or ``DataMissingError``.
    """
    results = evaluate_heads(
        model_path, dataset, [head], config=config, overrides=overrides, root=root,
        keep_neutral=keep_neutral, device=device, batch_size=batch_size, workers=workers,
        progress=progress,
    )  # fmt: skip
    return results[head]


def evaluate_heads(
    model_path: str | Path,
    dataset: str,
    heads: Sequence[str] | None = None,
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    root: str | Path | None = None,
    keep_neutral: bool = False,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, DatasetEvaluation]:
    """``evaluate_model`` for several heads of one model file on the same crops (cropped
    once): ``{head: evaluation}``; ``heads=None``: every head, then ``combined``."""
    from pathnet_fer.experiments.datasets import face_settings_for, load_dataset
    from pathnet_fer.formats.model_file import load_model

    loaded = load_model(model_path, device=device)
    names = list(heads) if heads is not None else [*loaded.head_names, "combined"]
    if len(loaded.head_names) == 1:  # a single path: its one head, once
        names = list(dict.fromkeys("combined" if n == loaded.head_names[0] else n
                                   for n in names))  # fmt: skip
    selected = {n: loaded.with_head(n) for n in names}  # an unknown head: before cropping
    cfg = dataset_config(dataset, loaded, config, overrides, root, keep_neutral)
    settings = face_settings_for(cfg, dataset)
    check_crops(loaded, settings, dataset)  # before any face is cropped
    data = load_dataset(cfg, dataset, progress=progress, workers=workers)
    out = {}
    for name, model in selected.items():
        out[name] = _evaluate_loaded(
            model, name, data, cfg, settings, model_path, dataset, batch_size
        )
    if heads is not None and len(loaded.head_names) == 1:
        out = {n: out["combined" if n == loaded.head_names[0] else n] for n in heads}
    return out


def _evaluate_loaded(
    model: Any, head: str, data: Any, cfg: Any, settings: Any, model_path: str | Path,
    dataset: str, batch_size: int,
) -> DatasetEvaluation:  # fmt: skip
    from pathnet_fer.formats.model_file import _kind_of

    result = evaluate_faces(
        model,
        data.faces.images,
        data.faces.frames,
        data.class_names,
        model_path=str(model_path),
        dataset=dataset,
        batch_size=batch_size,
    )
    kind = _kind_of(model.config)
    which = ""
    if len(model.head_names) > 1:
        which = f"combined: the mean of its calibrated heads {', '.join(model.head_names)}; "
    elif "head" in model.metadata:
        which = f"head {head}; "
    result.description = {
        "Model": f"{model_path} ({which}{kind}; trained on {model.dataset or '?'}; input "
        f"{model.input.describe()})",
        "Data": f"{dataset} ({_where(cfg, dataset)}): "
        f"{len(result.clips)} clips, {len(result.frames)} face crops; face settings size "
        f"{settings.size}, colour {settings.colour}, margin {settings.margin}"
        + (f", blur sigma {settings.blur:g}" if settings.blur else ""),
    }
    result.notes = face_setting_notes(model, settings)
    seen = _seen_in_training(model)
    wanted = {dataset, *cfg.members(dataset)}
    wanted |= {cfg.datasets[m].adapter for m in cfg.members(dataset)}
    # a fixed-split source (FER-2013) never trained on the splits its file lists as held out
    held_splits = set(model.metadata.get("held_out_splits") or [])
    kept = {split for m in cfg.members(dataset) for split in cfg.datasets[m].splits}
    if seen & wanted and kept and kept <= held_splits:
        result.notes.append(
            f"the model was trained on {', '.join(sorted(seen & wanted))}, but never on its "
            f"{', '.join(sorted(kept))} split scored here: held-out figures."
        )
    elif seen & wanted:
        result.notes.append(seen_note(model, seen & wanted))
    return result


def seen_note(model: Any, seen: set[str]) -> str:
    """The note on a dataset the model learnt from: which of its subjects, if any, give
    held-out figures. A final fit trained on every subject of its dataset, so it has
    none (its file lists no test subjects because there are none, not because they went
    unrecorded); a fold model names its held-out subjects, or counts them when there
    were too many to list (FER-2013: one "subject" per image)."""
    names = ", ".join(sorted(seen))
    meta = model.metadata
    if meta.get("final_fit") and model.dataset in seen:
        others = sorted(seen - {model.dataset, *_adapters_of(model, model.dataset)})
        also = f" (and learnt from {', '.join(others)})" if others else ""
        return (
            f"the model is a final fit, trained on every subject of {model.dataset}{also}: "
            "none was held out, so these are not held-out figures (a fold model of the "
            "same run, e.g. transfer_best.pt, has held-out subjects)."
        )
    by_dataset = meta.get("test_subjects_by_dataset") or {}  # a heads model's combination
    if any(n in by_dataset for n in seen):
        held = [str(s) for n in sorted(seen) for s in by_dataset.get(n) or []]
    else:
        held = [str(s) for s in meta.get("test_subjects") or []]
    count = meta.get("n_test_subjects")
    if held:
        which = ", ".join(held)
    elif isinstance(count, int) and count > 0:
        which = f"{count} held-out subjects, too many to list in the file"
    else:
        which = "not recorded in the file"
    return (
        f"the model was trained on {names}: only its held-out subjects ({which}) give "
        "held-out figures; the others were seen in training."
    )


def _adapters_of(model: Any, dataset: str) -> set[str]:
    """The adapter and member names the model file records for one of its datasets."""
    out: set[str] = set()
    for item in model.metadata.get("trained_on") or []:
        if isinstance(item, dict) and item.get("dataset") == dataset:
            out.update(map(str, item.get("adapters") or []))
            out.update(map(str, item.get("members") or {}))
    return out


def _where(cfg: Any, dataset: str) -> str:
    spec = cfg.datasets[dataset]
    if spec.union:
        return f"union of {', '.join(spec.union)}"
    return f"adapter {spec.adapter}, {cfg.dataset_root(dataset)}"


def _seen_in_training(model: Any) -> set[str]:
    """Every dataset name and adapter a model file says it learnt from: its own dataset,
    each link of its chain and each member of a pooled link."""
    seen = {str(model.dataset)} if model.dataset else set()
    for item in model.metadata.get("trained_on") or []:
        if isinstance(item, dict):
            seen.add(str(item.get("dataset", "")))
            seen.update(map(str, item.get("adapters") or []))
            seen.update(map(str, item.get("members") or {}))
    return seen - {""}
