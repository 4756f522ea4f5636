"""Datasets of a study: loading face crops as model inputs, their folds and fold plan.

Everything here depends only on the config and the data, never on jobs or arms, so the
planner, the jobs, the baselines and the coordinator all see the same folds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pathnet_fer.datasets.folds import Fold, fixed_split_fold, subject_folds
from pathnet_fer.datasets.loading import (
    LoadedDataset,
    face_settings_for,
    load_dataset,
    member_rows,
    shipped_splits,
)
from pathnet_fer.experiments.config import ConfigError, ExperimentConfig
from pathnet_fer.experiments.plan import link_fold
from pathnet_fer.pathnet import PathNetConfig
from pathnet_fer.pathnet.config import IMAGE_MODULES


def net_config_for(config: ExperimentConfig, dataset: str, data: LoadedDataset) -> Any:
    """The super-network (a PathNetConfig) for a dataset's crops: input width from the
    data, and for conv and block modules the image shape (size x size x channels) from its face
    settings."""

    extra = {}
    if config.pathnet.get("module") in IMAGE_MODULES:
        faces = face_settings_for(config, dataset)
        channels = 3 if faces.colour == "rgb" else 1
        extra["image_shape"] = (int(faces.size), int(faces.size), channels)
    return PathNetConfig(input_dim=data.input_dim, **extra, **config.pathnet)


def dataset_key(config: ExperimentConfig, name: str) -> tuple:
    """Every setting that decides a dataset's rows (a union's: each member's)."""
    spec = config.datasets[name]
    if spec.union:
        return ("union", *(dataset_key(config, m) for m in spec.union))
    return (
        name, spec.adapter, str(config.dataset_root(name)), spec.keep_neutral,
        tuple(spec.splits),
    )  # fmt: skip


def dataset_folds(config: ExperimentConfig, name: str, data: LoadedDataset) -> list[Fold]:
    """The folds of a dataset: by subject (default), by clip, or its fixed train/test split.

    Seeded by the config's seed only, so every arm and job sees the same folds. Made once
    per loaded dataset and settings (a fixed split re-reads its adapter's file list).
    """
    spec = config.datasets[name]
    key = (
        dataset_key(config, name), spec.folds, spec.holdout, config.n_folds(name),
        config.seed, config.protocol.stratify,
    )  # fmt: skip
    if key not in data.fold_cache:
        data.fold_cache[key] = _make_folds(config, name, data)
    return data.fold_cache[key]


def _make_folds(config: ExperimentConfig, name: str, data: LoadedDataset) -> list[Fold]:
    spec = config.datasets[name]
    if spec.union:
        return _union_folds(config, name, data)
    if spec.folds == "fixed":
        return fixed_split_fold(shipped_splits(config, name, data.clips), data.subjects)
    return _grouped_folds(config, spec, data.subjects, data.clips, data.y, config.n_folds(name))


def _grouped_folds(
    config: ExperimentConfig,
    spec,
    subjects: np.ndarray,
    clips: np.ndarray,
    y: np.ndarray,
    n_folds: int,
) -> list[Fold]:
    """Subject- (or clip-) grouped stratified folds; ``holdout``: the first of 1/holdout."""
    if spec.folds == "holdout":
        n_folds = round(1 / spec.holdout)
    groups = clips if spec.folds == "clips" else subjects
    folds = subject_folds(groups, y, n_folds, seed=config.seed, stratify=config.protocol.stratify)
    return folds[:1] if spec.folds == "holdout" else folds


def _union_folds(config: ExperimentConfig, name: str, data: LoadedDataset) -> list[Fold]:
    """A union's fold k is its members' folds k side by side (each member's own grouped,
    stratified split, seeded alike), so every held-out side holds people of every member."""
    spec = config.datasets[name]
    sides: dict[int, tuple[list, list]] = {}
    for member in spec.union:
        rows = np.flatnonzero(member_rows(data.subjects, member))
        try:
            folds = _grouped_folds(
                config, spec, data.subjects[rows], data.clips[rows], data.y[rows],
                config.n_folds(name),
            )  # fmt: skip
        except ValueError as err:
            raise ValueError(f"dataset {name!r}, member {member!r}: {err}") from None
        for fold in folds:
            train, test = sides.setdefault(fold.index, ([], []))
            train.append(rows[fold.train_index])
            test.append(rows[fold.test_index])
    out = []
    for k, (train, test) in sorted(sides.items()):
        train_index, test_index = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
        out.append(
            Fold(
                index=k,
                train_index=train_index,
                test_index=test_index,
                train_subjects=tuple(sorted(set(data.subjects[train_index]))),
                test_subjects=tuple(sorted(set(data.subjects[test_index]))),
            )
        )
    return out


def link_roles(links: list[str]) -> list[str]:
    """Role names of a chain's links: ``source``, ``link2`` ... ``destination``."""
    k = len(links)
    return [
        "source" if j == 0 else "destination" if j == k - 1 else f"link{j + 1}" for j in range(k)
    ]


def fold_plan(
    config: ExperimentConfig, datasets: dict[str, LoadedDataset] | None = None
) -> pd.DataFrame:
    """Every set's folds, per link: ``experiment, role, dataset, fold, subject, side,
    n_samples``.

    ``fold`` is 1-based as in metrics.csv. Baselines use the same plan to be comparable.
    """
    rows = []
    datasets = {} if datasets is None else datasets  # a caller's dict is filled
    for s in config.sets:
        for role, name in zip(link_roles(s.links), s.links, strict=True):
            # A source on its destination's dataset trains on the destination fold's
            # training subjects, so its plan is the destination's (listed again for audits).
            data = datasets.get(name) or load_dataset(config, name)
            datasets[name] = data
            for fold in dataset_folds(config, name, data):
                for side, index in (("train", fold.train_index), ("test", fold.test_index)):
                    counts = pd.Series(data.subjects[index]).value_counts()
                    rows += [
                        dict(
                            experiment=s.name,
                            role=role,
                            dataset=name,
                            fold=fold.index + 1,
                            subject=subj,
                            side=side,
                            n_samples=int(n),
                        )
                        for subj, n in sorted(counts.items())
                    ]
    return pd.DataFrame(
        rows, columns=["experiment", "role", "dataset", "fold", "subject", "side", "n_samples"]
    )


def check_link_leaks(
    config: ExperimentConfig, datasets: dict[str, LoadedDataset], sets: list | None = None
) -> None:
    """Refuse (``ConfigError``) a set in which a link trains on a face that a later link
    of the same destination fold holds out: the transferred path would have seen faces
    it is tested on.

    Links of one name share their folds (by design), but two names over one folder
    (``ck2: {adapter: ckplus48, root: ckplus48}`` beside ``ckplus48``), or a union member
    inside another link's data, are split apart; whether a face then sits on both sides
    depends on the folds, so this compares the files (resolved paths) behind each fold's
    rows, as the jobs take them (``link_fold``). Identical folds, or a fixed training
    split beside its own test split (``configs/demo-pooled.yaml``), pass. ``datasets``
    holds loaded datasets by name (missing ones are loaded and added); ``sets``: the
    sets to check (default: all).
    """
    import os

    files: dict[str, np.ndarray] = {}

    def loaded(name: str) -> LoadedDataset:
        if name not in datasets:
            datasets[name] = load_dataset(config, name)
        return datasets[name]

    def row_files(name: str) -> np.ndarray:
        """The resolved file behind each row (a crop's clip or image)."""
        if name not in files:
            data = loaded(name)
            manifest = data.faces.manifest
            path_of = dict(zip(manifest["clip"].astype(str), manifest["path"].astype(str),
                               strict=True))  # fmt: skip
            real = {p: os.path.realpath(p) for p in set(path_of.values())}
            files[name] = np.asarray([real[path_of[c]] for c in data.clips])
        return files[name]

    def side(name: str, fold: int, which: str) -> np.ndarray:
        chosen = dataset_folds(config, name, loaded(name))[link_fold(config, name, fold) - 1]
        return row_files(name)[getattr(chosen, which)]

    for i, s in enumerate(config.sets):
        if sets is not None and s not in sets:
            continue
        for fold in range(1, config.n_folds(s.destination) + 1):
            for position, a in enumerate(s.chain):
                for b in s.chain[position + 1 :]:
                    if a == b:
                        continue
                    shared = np.intersect1d(
                        side(a, fold, "train_index"), side(b, fold, "test_index")
                    )
                    if len(shared):
                        raise ConfigError(
                            f"sets[{i}] ({s.name}): in fold {fold}, {len(shared):,} file(s) "
                            f"that {b} holds out are on {a}'s training side (e.g. "
                            f"{shared[0]}): {a} and {b} read the same files but are split "
                            "into folds apart, so the transferred path would have trained "
                            "on faces it is tested on; use one dataset name for both links "
                            "(its folds then keep people apart), or give them disjoint files"
                        )


def data_fingerprint(data: LoadedDataset) -> str:
    """A content hash of a loaded dataset (features, labels, subjects, clips): what a
    shared source artifact is keyed by, so other crops or labels never reuse it."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    h.update(str(data.x.shape).encode())
    h.update(np.ascontiguousarray(data.x).data)
    h.update(data.y.astype(np.int64).tobytes())
    if data.targets is not None:
        h.update(np.ascontiguousarray(data.targets, dtype=np.float32).data)
    for values in (data.subjects, data.clips, data.class_names):
        h.update("\x1f".join(map(str, values)).encode())
    return h.hexdigest()
