"""A configured dataset's face crops as model inputs: its adapter's crops from the cache
(cropped on first use), its kept splits, a union's members pooled, soft targets from
annotator votes. Takes any ``DatasetSource`` (a study's config or a ``DatasetCatalog``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pathnet_fer.data.registry import get_adapter
from pathnet_fer.datasets.folds import Fold
from pathnet_fer.datasets.spec import DatasetSource
from pathnet_fer.faces.dataset import FaceDataset
from pathnet_fer.faces.preprocess import preprocess_dataset
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.paths import DATA_ENV


class DataMissingError(FileNotFoundError):
    """A configured dataset is not where the config says; the message says what to get."""


@dataclass
class LoadedDataset:
    """A dataset's face crops as model inputs, with what folds need."""

    name: str
    faces: Any  # FaceDataset
    x: np.ndarray  # float32 (n, D) in [0, 1]
    y: np.ndarray  # int64 (n,)
    subjects: np.ndarray
    clips: np.ndarray
    class_names: tuple[str, ...]
    targets: np.ndarray | None = None  # float32 (n, C) vote shares (soft_labels), else None
    # folds made from this data, by the settings that decide them (dataset_folds)
    fold_cache: dict[tuple, list[Fold]] = field(default_factory=dict, repr=False)

    @property
    def input_dim(self) -> int:
        return int(self.x.shape[1])


def face_settings_for(config: DatasetSource, dataset: str):
    """The dataset's FaceSettings: global ``faces`` merged with the dataset's overrides (a
    union's: its members', which the config checks are one)."""
    first = config.members(dataset)[0]
    return FaceSettings.from_dict({**config.faces, **config.datasets[first].faces})


def check_data(config: DatasetSource, names: list[str] | None = None) -> None:
    """Raise DataMissingError naming every missing dataset, what it is and where to put it."""
    missing = []
    wanted = names or list(config.datasets)
    for name in dict.fromkeys(m for n in wanted for m in config.members(n)):
        root = config.dataset_root(name)
        if not root.is_dir():
            adapter = get_adapter(config.datasets[name].adapter)
            missing.append(f"  - {name}: {adapter.description}\n    expected at {root}")
    if missing:
        raise DataMissingError(
            "dataset(s) not found:\n" + "\n".join(missing) + "\nObtain them and put each "
            f"folder there, or point the data root elsewhere (${DATA_ENV}, or --set "
            "data_root=DIR), or set a dataset's folder (--set datasets.NAME.root=DIR)."
        )


def load_dataset(
    config: DatasetSource, name: str, progress: bool = False, workers: int | None = None
) -> LoadedDataset:
    """Face crops of a configured dataset (from the cache when already preprocessed)."""
    check_data(config, [name])
    faces = load_faces(config, name, progress, workers)
    clips = np.asarray(faces.clips).astype(str)
    return LoadedDataset(
        name=name,
        faces=faces,
        x=np.ascontiguousarray(faces.features()),
        y=np.asarray(faces.labels, dtype=np.int64),
        subjects=np.asarray(faces.subjects).astype(str),
        clips=clips,
        class_names=tuple(faces.class_names),
        targets=soft_targets(config, name, clips, tuple(faces.class_names)),
    )


def soft_targets(
    config: DatasetSource, name: str, clips: np.ndarray, class_names: tuple[str, ...]
) -> np.ndarray | None:
    """``datasets.NAME.soft_labels``: each crop's vote shares over the classes, from its
    adapter's vote counts (a crop whose votes all fall outside the classes keeps its
    majority label as a one-hot target); None when the setting is off."""
    spec = config.datasets[name]
    if not spec.soft_labels:
        return None
    votes_of = getattr(get_adapter(spec.adapter), "votes", None)
    if votes_of is None:
        raise ValueError(
            f"datasets.{name}.soft_labels: adapter {spec.adapter!r} has no annotator votes "
            "(ferplus has): set soft_labels false"
        )
    votes = votes_of(config.dataset_root(name))
    missing = sorted(set(clips) - set(votes.index))
    if missing:
        raise ValueError(
            f"datasets.{name}.soft_labels: {len(missing)} crops have no votes (e.g. "
            f"{missing[0]!r}); rebuild the crops or check the dataset's label.csv files"
        )
    table = votes.loc[clips, list(class_names)].to_numpy(dtype=np.float32)
    labels = {c: i for i, c in enumerate(class_names)}
    empty = table.sum(1) <= 0
    if empty.any():  # cannot happen for a majority label inside the classes; kept safe
        majority = votes.loc[clips[empty], list(class_names)].to_numpy().argmax(1)
        table[empty] = np.eye(len(labels), dtype=np.float32)[majority]
    return table / table.sum(1, keepdims=True)


def load_faces(config: DatasetSource, name: str, progress: bool, workers: int | None):
    """A dataset's FaceDataset: its adapter's crops, kept splits only; a union's members
    pooled (``FaceDataset.pooled``)."""
    spec = config.datasets[name]
    if spec.union:
        parts = {m: load_faces(config, m, progress, workers) for m in spec.union}
        return FaceDataset.pooled(parts, name, face_settings_for(config, name))
    faces = preprocess_dataset(
        spec.adapter,
        config.dataset_root(name),
        settings=face_settings_for(config, name),
        cache_dir=config.cache_dir,
        workers=workers,
        keep_neutral=spec.keep_neutral,
        progress=progress,
    )
    if len(faces) == 0:
        raise ValueError(f"dataset {name!r} gave no face crops; see its manifest for reasons")
    if spec.splits:
        split = shipped_splits(config, name, np.asarray(faces.clips).astype(str))
        unknown = sorted(set(spec.splits) - set(split))
        if unknown:
            raise ValueError(
                f"datasets.{name}.splits names {unknown}, but its crops come from splits "
                f"{sorted(str(v) for v in set(split))}"
            )
        faces = faces.subset(np.isin(split, spec.splits))
    return faces


def member_rows(subjects: np.ndarray, member: str) -> np.ndarray:
    """Mask of a union's rows that come from ``member`` (subjects ``<member>/...``;
    member names hold no ``/``, the config checks)."""
    return np.char.startswith(np.asarray(subjects).astype(str), member + "/")


def shipped_splits(config: DatasetSource, name: str, clips: np.ndarray) -> np.ndarray:
    """Each clip's split as the dataset ships it (the adapter's ``split`` column, e.g.
    FER-2013's ``train``/``test``); ``""`` for a clip the adapter does not list."""
    spec = config.datasets[name]
    samples = (
        get_adapter(spec.adapter).scan(config.dataset_root(name), keep_neutral=spec.keep_neutral)
    ).samples
    if not samples["split"].astype(str).ne("").any():
        raise ValueError(
            f"dataset {name!r} ({spec.adapter}) ships no train/test split; "
            "folds: fixed and splits: [...] need one"
        )
    split_of = dict(zip(samples["clip"].astype(str), samples["split"].astype(str), strict=True))
    return np.asarray([split_of.get(c, "") for c in clips])
