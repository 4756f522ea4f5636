"""Subject-independent folds: no subject ever appears in both a fold's train and test sets.

Frames of one clip, and clips of one person, are near-duplicates; splitting by frame (or even
by clip) leaks the test set into training. Folds are therefore grouped by subject and
stratified by emotion where the class counts allow (sklearn ``StratifiedGroupKFold``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold


@dataclass(frozen=True)
class Fold:
    """One fold: sample indices and the subjects on each side (sorted, disjoint)."""

    index: int
    train_index: np.ndarray
    test_index: np.ndarray
    train_subjects: tuple[str, ...]
    test_subjects: tuple[str, ...]

    def __post_init__(self) -> None:
        overlap = set(self.train_subjects) & set(self.test_subjects)
        if overlap:
            raise AssertionError(f"fold {self.index}: subjects in train and test: {overlap}")

    def to_dict(self) -> dict[str, object]:
        """JSON/YAML-friendly description (subjects and sizes, not the index arrays)."""
        return {
            "fold": self.index,
            "train_subjects": list(self.train_subjects),
            "test_subjects": list(self.test_subjects),
            "n_train": int(len(self.train_index)),
            "n_test": int(len(self.test_index)),
        }


def subject_folds(
    subjects: Sequence[str] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    n_folds: int,
    seed: int = 0,
    stratify: bool = True,
) -> list[Fold]:
    """Split samples into ``n_folds`` folds grouped by subject, stratified by label.

    Every subject lands in exactly one test set. ``stratify=False`` uses plain grouped
    shuffling. Raises ValueError when there are fewer subjects than folds (say so rather
    than silently making fewer folds).
    """
    subjects = np.asarray(subjects).astype(str)
    labels = np.asarray(labels)
    if len(subjects) != len(labels):
        raise ValueError(f"{len(subjects)} subjects for {len(labels)} labels")
    unique = np.unique(subjects)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if len(unique) < n_folds:
        raise ValueError(
            f"cannot make {n_folds} subject-independent folds from {len(unique)} subjects "
            f"({', '.join(unique[:10])}{'...' if len(unique) > 10 else ''}); lower the fold count"
        )
    if stratify:
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(np.zeros(len(labels)), labels, groups=subjects))
    else:
        rng = np.random.default_rng(seed)
        order = rng.permutation(unique)
        chunks = np.array_split(order, n_folds)
        splits = []
        for chunk in chunks:
            test = np.isin(subjects, chunk)
            splits.append((np.flatnonzero(~test), np.flatnonzero(test)))
    folds = []
    for k, (train_idx, test_idx) in enumerate(splits):
        if len(test_idx) == 0:
            raise ValueError(f"fold {k} has no test samples; lower the fold count")
        folds.append(
            Fold(
                index=k,
                train_index=np.sort(train_idx),
                test_index=np.sort(test_idx),
                train_subjects=tuple(sorted(set(subjects[train_idx]))),
                test_subjects=tuple(sorted(set(subjects[test_idx]))),
            )
        )
    return folds


def fixed_split_fold(splits: Sequence[str] | np.ndarray, subjects=None) -> list[Fold]:
    """One fold from a dataset's own split column (FER-2013 style: ``train`` / ``test``).

    Used where a dataset has no subject ids: its published split is the honest choice.
    """
    splits = np.asarray(splits).astype(str)
    unknown = sorted(set(splits) - {"train", "test"})
    if unknown:
        raise ValueError(f"fixed split needs 'train'/'test' values, found {unknown}")
    train_idx, test_idx = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "test")
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise ValueError("fixed split: the dataset has no 'train' or no 'test' samples")
    subj = np.asarray(subjects).astype(str) if subjects is not None else None
    return [
        Fold(
            index=0,
            train_index=train_idx,
            test_index=test_idx,
            train_subjects=tuple(sorted(set(subj[train_idx]))) if subj is not None else (),
            test_subjects=tuple(sorted(set(subj[test_idx]))) if subj is not None else (),
        )
    ]


def exclude_subjects(subjects: Sequence[str] | np.ndarray, excluded: Sequence[str]) -> np.ndarray:
    """Indices of samples whose subject is not excluded.

    Same-dataset transfer: the destination fold's test subjects must never be seen by the
    source task either, or the "transfer" arm would have trained on its test people.
    """
    subjects = np.asarray(subjects).astype(str)
    return np.flatnonzero(~np.isin(subjects, np.asarray(list(excluded), dtype=str)))
