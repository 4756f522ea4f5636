"""A pooled dataset (``datasets.NAME.union: [a, b]``): several datasets' crops in one
training set. A plain CNN learns the CREMA-D actor best from in-the-wild and posed faces
pooled (docs/results-fer2013.md), so a destination may be such a union. Its people must
stay apart: subjects are prefixed by dataset, so two datasets' ``S010`` are two people and
folds never split one person."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fixture_trees import fer_subset
from pathnet_fer.experiments.config import ConfigError, load_config
from pathnet_fer.experiments.datasets import dataset_folds, face_settings_for, load_dataset


@pytest.fixture(scope="module")
def fer_tree(tmp_path_factory, require_data):
    return fer_subset(require_data("fer2013"), tmp_path_factory.mktemp("fer") / "fer", 4, 6)


def _config(cache, *extra):
    return load_config(
        "small", [f"cache_dir={cache}", "faces.size=16", "logging.progress=false", *extra]
    )


def test_union_pools_members_and_keeps_their_people_apart(fer_tree, tmp_path_factory, require_data):
    require_data("jaffe")
    cache = tmp_path_factory.getbasetemp() / "cache"
    config = _config(
        cache,
        f"datasets.fer={{adapter: fer2013, root: {fer_tree}, splits: [test]}}",
        "datasets.jaffe_again={adapter: jaffe, root: jaffe}",  # the same 10 people again
        "datasets.pooled={union: [jaffe, jaffe_again, fer]}",
        "protocol.folds=3",
    )
    parts = {m: load_dataset(config, m, workers=1) for m in ("jaffe", "jaffe_again", "fer")}
    pooled = load_dataset(config, "pooled", workers=1)
    assert len(pooled.y) == sum(len(d.y) for d in parts.values())
    assert np.array_equal(pooled.x, np.concatenate([d.x for d in parts.values()]))
    assert np.array_equal(pooled.y, np.concatenate([d.y for d in parts.values()]))
    assert pooled.class_names == parts["jaffe"].class_names
    people = set(parts["jaffe"].subjects)
    assert len(people) == 10
    # without the prefix the two copies would be one set of 10 people, split across folds
    assert len(set(pooled.subjects)) == 2 * 10 + len(set(parts["fer"].subjects))
    assert {s.split("/", 1)[0] for s in pooled.subjects} == set(parts)
    assert set(pooled.faces.manifest["subject"]) >= {f"jaffe/{p}" for p in people}
    folds = dataset_folds(config, "pooled", pooled)
    assert len(folds) == 3
    tested = np.concatenate([f.test_index for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(len(pooled.y)))  # each face once
    offset = 0
    for member, part in parts.items():  # fold k = the members' own folds k side by side
        own = dataset_folds(config, member, part)
        for fold, alone in zip(folds, own, strict=True):
            assert not set(fold.train_subjects) & set(fold.test_subjects)
            rows = fold.test_index[(fold.test_index >= offset)
                                   & (fold.test_index < offset + len(part.y))]  # fmt: skip
            assert np.array_equal(rows - offset, alone.test_index)
        offset += len(part.y)
    assert face_settings_for(config, "pooled") == face_settings_for(config, "jaffe")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["datasets.u={union: [jaffe]}"], "two or more distinct datasets"),
        (["datasets.u={union: [jaffe, jaffe]}"], "two or more distinct datasets"),
        (
            ["datasets.a/b={adapter: jaffe}", "datasets.u={union: [jaffe, a/b]}"],
            "may not hold '/'",
        ),  # fmt: skip
        (["datasets.u={union: [jaffe, nowhere]}"], "'nowhere' is not another dataset"),
        (["datasets.u={union: [jaffe, u]}"], "'u' is not another dataset"),
        (
            ["datasets.u={union: [jaffe, ckplus48]}", "datasets.v={union: [u, jaffe]}"],
            "'u' is a union itself",
        ),
        (["datasets.u={union: [jaffe, ckplus48], root: x}"], r"datasets\.u\.root: a union"),
        (
            ["datasets.u={union: [jaffe, ckplus48], faces: {margin: 0.2}}"],
            r"datasets\.u\.faces: a union takes its members' faces; set it on datasets\.jaffe",
        ),
        (["datasets.u={union: [jaffe, ckplus48], folds: fixed}"], "folds: fixed"),
        (
            ["datasets.u={union: [jaffe, ckplus48]}", "datasets.jaffe.faces={margin: 0.2}"],
            r"jaffe and ckplus48 have different face settings \(margin 0\.2/0\.0\)",
        ),
        (["datasets.u={root: x}"], r"datasets\.u needs an adapter .* or a union"),
        (  # jaffe's fold-1 training people would be held out by the union's fold 1
            [
                "datasets.u={union: [jaffe, ckplus48], n_folds: 3}",
                "protocol.folds=2",
                "sets=[{source: jaffe, destination: u}]",
            ],
            r"jaffe and u share jaffe; .* \(now subjects/2 and subjects/3\)",
        ),
        (
            [
                "datasets.u={union: [jaffe, ckplus48]}",
                "datasets.jaffe.folds=clips",
                "sets=[{source: u, destination: jaffe}]",
            ],
            r"u and jaffe share jaffe",
        ),
    ],
)
def test_bad_unions_are_refused_before_anything_runs(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config("small", [f"cache_dir={tmp_path}", *extra])


def test_union_destination_trains_and_deploys_with_every_member(tmp_path, require_data):
    """A whole study on a pooled destination: folds, the transfer arm, the final model."""
    from pathnet_fer.experiments.executor import InlineExecutor
    from pathnet_fer.experiments.runner import run_experiment
    from pathnet_fer.predict.model_file import load_model

    require_data("ckplus48")
    require_data("jaffe")
    config = _config(
        tmp_path / "cache",
        "datasets.posed={union: [ckplus48, jaffe]}",
        "sets=[{source: ckplus48, destination: posed}]",
        "evolution.generations=2",
        "evolution.minibatches=2",
        "protocol.eval_every=2",
        "protocol.folds=2",
        "protocol.iterations=1",
        "pathnet.units=4",
    )
    out = tmp_path / "run"
    result = run_experiment(config, out, executor=InlineExecutor(), quiet=True)
    metrics = result.metrics
    assert set(metrics[metrics.task == "posed"].arm) >= {"transfer", "scratch"}
    folds = pd.read_csv(out / "folds.csv")
    tested = folds[(folds.dataset == "posed") & (folds.side == "test")]
    assert {s.split("/", 1)[0] for s in tested.subject} == {"ckplus48", "jaffe"}
    source = folds[(folds.role == "source") & (folds.side == "train")]
    for fold, g in tested.groupby("fold"):  # the source never trained on a held-out person
        held = {p.split("/", 1)[1] for p in g.subject if p.startswith("ckplus48/")}
        assert held and not held & set(source[source.fold == fold].subject)
    meta = load_model(out / "models" / "ckplus48-to-posed" / "final.pt").metadata
    seen = {item["dataset"]: item for item in meta["trained_on"]}
    pooled = load_dataset(config, "posed")
    assert (
        seen["posed"]["faces"]
        == len(pooled.y)
        == sum(len(load_dataset(config, m).y) for m in ("ckplus48", "jaffe"))
    )
    assert seen["posed"]["members"] == {"ckplus48": 927, "jaffe": 183}
    assert seen["posed"]["adapters"] == ["ckplus48", "jaffe"]
    # Scored on a member alone, the final model's figures are on faces it learnt from,
    # and evaluate says so (the model's dataset is "posed", not "jaffe").
    from pathnet_fer.predict.evaluate import evaluate_model

    saved = tmp_path / "config.yaml"
    saved.write_text((out / "config.yaml").read_text())
    on_jaffe = evaluate_model(
        out / "models" / "ckplus48-to-posed" / "final.pt", "jaffe", config=saved, workers=1
    )
    assert any("was trained on jaffe" in n for n in on_jaffe.notes), on_jaffe.notes
    on_pool = evaluate_model(
        out / "models" / "ckplus48-to-posed" / "final.pt", "posed", config=saved, workers=1
    )
    assert "union of ckplus48, jaffe" in on_pool.description["Data"]
    assert len(on_pool.frames) == len(pooled.y)
    # the report scores each member's held-out faces on their own
    members = pd.read_csv(out / "pooled_members.csv")
    for arm in ("transfer", "scratch"):
        rows = members[members.arm == arm]
        assert set(rows.member) == {"ckplus48", "jaffe"} and len(rows) == 2 * 2
        folds_of = tested.groupby("fold").n_samples.sum()
        assert rows.groupby("fold").n.sum().to_dict() == folds_of.to_dict()
        assert rows.accuracy.between(0, 1).all() and rows.top_share.between(1 / 6, 1).all()
        test = metrics[(metrics.arm == arm) & (metrics.split == "test") & (metrics.level == "frame")
                       & (metrics.metric == "accuracy") & (metrics.generation == 2)]  # fmt: skip
        for fold, g in rows.groupby("fold"):  # the members' accuracies make the union's
            pooled_acc = float((g.n * g.accuracy).sum() / g.n.sum())
            assert pooled_acc == pytest.approx(float(test[test.fold == fold].value.iloc[0]))
    summary = (out / "summary.md").read_text()
    assert "## Pooled destinations by member dataset" in summary
    assert "| ckplus48->posed | transfer | posed | jaffe |" in summary
