"""Choosing a dataset's shipped splits and holding out part of them: a study may learn from
FER-2013's test faces only, with a seeded stratified hold-out (added when the shared training
split was a blurred copy, median sharpness 1.9 against 29; it is sharp now, docs/faces.md)."""

from __future__ import annotations

import numpy as np
import pytest

from fixture_trees import fer_subset
from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.experiments.config import ConfigError
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.datasets import dataset_folds


@pytest.fixture(scope="module")
def fer_tree(tmp_path_factory, require_data):
    return fer_subset(require_data("fer2013"), tmp_path_factory.mktemp("fer") / "fer", 6, 20)


def _config(fer, cache, *extra):
    return load_config(
        "small",
        [f"datasets.fer2013={{adapter: fer2013, root: {fer}}}", "faces.size=16",
         f"cache_dir={cache}", *extra],
    )  # fmt: skip


def test_splits_keep_only_named_rows_and_holdout_is_one_seeded_stratified_fold(
    fer_tree, tmp_path_factory
):
    cache = tmp_path_factory.getbasetemp() / "cache"
    extra = ["datasets.fer2013.splits=[test]", "datasets.fer2013.folds=holdout",
             "datasets.fer2013.holdout=0.25"]  # fmt: skip
    config = _config(fer_tree, cache, *extra)
    data = load_dataset(config, "fer2013", workers=1)
    everything = load_dataset(_config(fer_tree, cache), "fer2013", workers=1)
    assert len(everything.y) == 6 * (6 + 20)
    assert len(data.y) == 6 * 20 and all(c.startswith("test/") for c in data.clips)
    (fold,) = dataset_folds(config, "fer2013", data)
    assert config.n_folds("fer2013") == 1
    assert len(fold.test_index) == 30 and len(fold.train_index) == 90
    assert not set(fold.train_subjects) & set(fold.test_subjects)
    assert (np.bincount(data.y[fold.test_index], minlength=6) == 5).all()  # stratified
    again = dataset_folds(config, "fer2013", load_dataset(config, "fer2013", workers=1))[0]
    assert np.array_equal(again.test_index, fold.test_index)
    other = _config(fer_tree, cache, *extra, "seed=1")
    moved = dataset_folds(other, "fer2013", load_dataset(other, "fer2013", workers=1))[0]
    assert not np.array_equal(moved.test_index, fold.test_index)


def test_bad_split_choices_are_refused_with_the_reason(fer_tree, tmp_path_factory, require_data):
    cache = tmp_path_factory.getbasetemp() / "cache"
    with pytest.raises(ConfigError, match="holdout must be 1/k"):
        _config(fer_tree, cache, "datasets.fer2013.holdout=0.3")
    config = _config(fer_tree, cache, "datasets.fer2013.splits=[val]")
    with pytest.raises(ValueError, match=r"splits names \['val'\].*\['test', 'train'\]"):
        load_dataset(config, "fer2013", workers=1)
    require_data("jaffe")
    config = load_config("small", [f"cache_dir={cache}", "datasets.jaffe.splits=[test]"])
    with pytest.raises(ValueError, match="ships no train/test split"):
        load_dataset(config, "jaffe", workers=1)
