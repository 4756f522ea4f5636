"""Score a model file on every face of a labelled dataset: ``pathnet-fer evaluate``.

The dataset's crops come from the experiment pipeline (``load_dataset``: the adapter,
the config's face settings, the crop cache), so a model is scored on exactly the faces
an experiment's test folds hold. The scoring itself (classes matched by emotion name,
frame level, clip level by majority vote and by mean-probability vote, the report) is
``scoring.on_faces``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pathnet_fer.datasets.loading import face_settings_for, load_dataset
from pathnet_fer.datasets.one_dataset import dataset_catalog
from pathnet_fer.formats.model_file import _kind_of, load_model
from pathnet_fer.scoring.on_faces import (
    DEFAULT_BATCH_SIZE,
    ClassMapping,
    DatasetEvaluation,
    EvaluationError,
    check_crops,
    emotion_key,
    evaluate_faces,
    face_setting_notes,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ClassMapping",
    "DatasetEvaluation",
    "EvaluationError",
    "check_crops",
    "dataset_catalog",
    "emotion_key",
    "evaluate_faces",
    "evaluate_heads",
    "evaluate_model",
    "face_setting_notes",
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
    mirror: bool | None = None,
    prior: str | None = None,
) -> DatasetEvaluation:
    """Load a model file and score it on every face of a dataset (see module doc);
    ``head``: which head of a chain's heads model answers (``combined``: their mix);
    ``mirror``: average each face with its mirror image (None: the file's setting);
    ``prior``: ``train`` or ``uniform`` class prior (None: the file's setting).

    Raises ``ModelFileError`` (bad model file, unknown head), ``EvaluationError`` /
    ``ConfigError`` (unknown dataset, crops the model cannot take) or ``DataMissingError``.
    """
    results = evaluate_heads(
        model_path, dataset, [head], config=config, overrides=overrides, root=root,
        keep_neutral=keep_neutral, device=device, batch_size=batch_size, workers=workers,
        progress=progress, mirror=mirror, prior=prior,
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
    mirror: bool | None = None,
    prior: str | None = None,
) -> dict[str, DatasetEvaluation]:
    """``evaluate_model`` for several heads of one model file on the same crops (cropped
    once): ``{head: evaluation}``; ``heads=None``: every head, then ``combined``."""

    loaded = load_model(model_path, device=device)
    loaded = loaded if mirror is None else loaded.mirrored(mirror)
    names = list(heads) if heads is not None else [*loaded.head_names, "combined"]
    if len(loaded.head_names) == 1:  # a single path: its one head, once
        names = list(dict.fromkeys("combined" if n == loaded.head_names[0] else n
                                   for n in names))  # fmt: skip
    selected = {n: loaded.with_head(n) for n in names}  # an unknown head: before cropping
    if prior is not None:  # a prior the file cannot give: before cropping
        selected = {n: m.with_prior(prior) for n, m in selected.items()}
    cfg = dataset_catalog(dataset, loaded.face_settings, config, overrides, root, keep_neutral)
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
    if model.mirror:
        which += "each face averaged with its mirror image; "
    if model.prior == "uniform":
        which += "uniform class prior (training frequencies divided out); "
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
