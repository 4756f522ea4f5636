"""FER+ (``ferplus`` adapter): majority labels from 10 annotators' votes, faces most
called unknown / not a face skipped, and the votes as soft targets
(``datasets.NAME.soft_labels``) that reach the paths' SGD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixture_trees import ferplus_subset
from pathnet_fer.data.ferplus import VoteFileError, read_votes
from pathnet_fer.data.registry import get_adapter
from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve
from pathnet_fer.evolution.data import prepare_data
from pathnet_fer.experiments.config import ConfigError
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.pathnet import PathNet, PathNetConfig

ORDER = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")


@pytest.fixture(scope="module")
def ferplus_tree(tmp_path_factory, require_data):
    return ferplus_subset(require_data("ferplus"), tmp_path_factory.mktemp("fp") / "fp", 120)


def test_scan_labels_faces_by_majority_and_skips_non_faces(ferplus_tree):
    scan = get_adapter("ferplus").scan(ferplus_tree)
    votes = read_votes(ferplus_tree / "FER2013Train" / "label.csv")
    assert set(scan.samples["split"]) == {"train", "test"}
    train = scan.samples[scan.samples["split"] == "train"].set_index("clip")
    for row in votes.itertuples(index=False):
        counts = np.array(row[1:])
        clip = "train/" + row.file.removesuffix(".png")
        emotions = counts[:8]
        majority = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                    "contempt")[int(emotions.argmax())]  # fmt: skip
        kept = emotions.sum() > counts[8:].sum() and majority not in ("neutral", "contempt")
        assert (clip in train.index) == kept, (clip, counts)
        if kept:
            assert train.loc[clip, "label"] == majority
    # the shipped copy: 92 faces over the three splits are mostly unknown / not a face
    reasons = scan.skipped["reason"]
    assert reasons.str.contains("neutral").sum() > 0


def test_a_bad_label_file_is_refused_with_its_line(tmp_path):
    bad = tmp_path / "label.csv"
    bad.write_text('a.png,"(0, 0, 48, 48)",1,2,3\n')
    with pytest.raises(VoteFileError, match="line 1: expected a file name"):
        read_votes(bad)
    bad.write_text('a.png,"(0, 0, 48, 48)",1,2,3,4,5,6,7,8,9,x\n')
    with pytest.raises(VoteFileError, match="must be integers"):
        read_votes(bad)


def _config(tree, cache, *extra):
    return load_config(
        "small",
        [
            f"cache_dir={cache}",
            "faces.size=16",
            "logging.progress=false",
            "pathnet.module=conv",
            "pathnet.channels=[2, 2, 2]",
            f"datasets.fp={{adapter: ferplus, root: {tree}, folds: fixed, soft_labels: true}}",
            "sets=[{source: fp, destination: jaffe}]",
            *extra,
        ],
    )


def test_soft_labels_are_the_vote_shares_of_each_crop(ferplus_tree, tmp_path, require_data):
    require_data("jaffe")
    config = _config(ferplus_tree, tmp_path)
    data = load_dataset(config, "fp")
    assert data.class_names == ORDER
    assert data.targets is not None and data.targets.shape == (len(data.y), 6)
    np.testing.assert_allclose(data.targets.sum(1), 1.0, atol=1e-6)
    votes = get_adapter("ferplus").votes(ferplus_tree)
    for i in (0, len(data.y) // 2, len(data.y) - 1):
        row = votes.loc[data.clips[i], list(ORDER)].to_numpy(dtype=np.float32)
        np.testing.assert_allclose(data.targets[i], row / row.sum(), rtol=1e-6)
        assert data.targets[i].argmax() == data.y[i] or row.max() == row[data.y[i]]
    assert (data.targets.max(1) < 1).any()  # some faces split the annotators
    plain = load_dataset(_config(ferplus_tree, tmp_path, "datasets.fp.soft_labels=false"), "fp")
    assert plain.targets is None and np.array_equal(plain.y, data.y)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["datasets.jaffe.soft_labels=true"], "ships no annotator votes"),
        (["pathnet.module=linear"], "needs conv modules"),
        (["datasets.u={union: [fp, jaffe]}", "datasets.jaffe.folds=subjects"], "member of union"),
    ],
)
def test_soft_labels_are_refused_where_they_cannot_work(ferplus_tree, tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        _config(ferplus_tree, tmp_path, *extra)


def test_one_hot_targets_train_exactly_as_labels_and_soft_ones_differently():
    """Soft targets reach the SGD: one-hot rows give bit-identical training to the labels
    alone, vote-like rows change it; the counted accuracy stays the label's."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 144, generator=gen), torch.randint(0, 3, (40,), generator=gen)
    soft = torch.nn.functional.one_hot(y, 3).float() * 6 + torch.rand(40, 3, generator=gen)

    def run(targets):
        net = PathNet(
            PathNetConfig(input_dim=144, module="conv", image_shape=(12, 12, 1),
                          channels=(2, 3, 4), modules=4, max_active=2),
            seed=1,
        )  # fmt: skip
        cfg = EvolutionConfig(generations=2, population=2, minibatches=2, batch_size=8)
        task = evolve(net, TaskData(x, y, targets=targets), 3, cfg, seed=0)
        return torch.cat([w.flatten() for w in net.weights] + [task.readout_weight.flatten()])

    labels_only = run(None)
    assert torch.equal(run(torch.nn.functional.one_hot(y, 3) * 5), labels_only)  # normalised
    assert not torch.equal(run(soft), labels_only)
    prepared = prepare_data(TaskData(x, y, targets=soft), 1, 144, 3, torch.device("cpu"), False)
    torch.testing.assert_close(prepared.targets.sum(1), torch.ones(40))
    with pytest.raises(ValueError, match="no weight on any class"):
        prepare_data(TaskData(x, y, targets=torch.zeros(40, 3)), 1, 144, 3, "cpu", False)
    with pytest.raises(ValueError, match=r"must have shape \(40, 3\)"):
        prepare_data(TaskData(x, y, targets=soft[:, :2]), 1, 144, 3, "cpu", False)
