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
from pathnet_fer.datasets.loading import face_settings_for, load_dataset
from pathnet_fer.experiments.config import ConfigError
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.datasets import dataset_folds


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
        # The same 10 people again: load_dataset pools what it is told (a study refuses
        # members that share files: test_union_members_that_read_the_same_files_...).
        "datasets.jaffe_again={adapter: jaffe, root: jaffe}",
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
        (
            ["datasets.u={union: [jaffe, ckplus48]}", "datasets.jaffe.keep_neutral=true"],
            r"datasets\.u\.union: members differ in classes: jaffe keep neutral \(7 classes\), "
            r"ckplus48 not \(6\)",
        ),
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
    from pathnet_fer.formats.model_file import load_model

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


def _dry_run(tmp_path, *sets: str) -> int:
    from pathnet_fer.cli import main

    argv = ["experiment", "small", "--dry-run", "--set", f"cache_dir={tmp_path / 'cache'}"]
    return main([*argv, *(a for s in sets for a in ("--set", s))])


def test_union_members_that_read_the_same_files_are_refused(
    fer_tree, tmp_path, require_data, capsys
):
    """The same faces in two members (FER-2013's test split inside all of FER-2013, or
    CK+48 under a second name) would be counted twice, and a face trained on through one
    member could be tested on through the other. Refused on the files, in a dry run."""
    require_data("ckplus48")
    fer = [
        f"datasets.fer_test={{adapter: fer2013, root: {fer_tree}, splits: [test]}}",
        f"datasets.fer_all={{adapter: fer2013, root: {fer_tree}}}",
        f"datasets.fer_train={{adapter: fer2013, root: {fer_tree}, splits: [train]}}",
    ]
    ck2 = "datasets.ck2={adapter: ckplus48, root: ckplus48}"
    test_files = [p for p in (fer_tree / "test").glob("*/*.jpg") if p.parent.name != "neutral"]
    refused = [
        (
            [*fer, "datasets.p1={union: [fer_test, fer_all]}", "sets=[{source: ckplus48, destination: p1}]"],
            f"datasets.p1.union: members fer_test and fer_all read the same {len(test_files)} file(s)",
            f"(e.g. {fer_tree / 'test'}",
        ),
        (
            [ck2, "datasets.u={union: [ckplus48, ck2]}", "sets=[{source: jaffe, destination: u}]"],
            "datasets.u.union: members ckplus48 and ck2 read the same",
            str(require_data("ckplus48")),
        ),
    ]  # fmt: skip
    for extra, message, detail in refused:
        assert _dry_run(tmp_path, *extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and detail in err[0], err
    # Disjoint splits of one folder, and two names over one folder in separate sets, pass.
    fine = [
        [*fer, "datasets.p2={union: [fer_train, fer_test]}", "sets=[{source: ckplus48, destination: p2}]"],
        [ck2, "sets=[{source: jaffe, destination: ckplus48}, {source: jaffe, destination: ck2}]"],
    ]  # fmt: skip
    for extra in fine:
        assert _dry_run(tmp_path, *extra) == 0, capsys.readouterr().err
        capsys.readouterr()


def test_links_that_train_on_faces_another_link_holds_out_are_refused(
    fer_tree, tmp_path_factory, require_data, capsys
):
    """Two names over one folder in a chain are split into folds apart: a source can
    train on the destination's held-out faces. Refused on the fold's files before the
    run directory exists; identical folds, and a fixed training split beside a union
    holding its own test split (configs/demo-pooled.yaml), pass."""
    from pathnet_fer.cli import main

    require_data("ckplus48")
    cache = tmp_path_factory.getbasetemp() / "cache"
    ck2 = ["datasets.ck2={adapter: ckplus48, root: ckplus48}"]
    leaky = [*ck2, "datasets.ck2.n_folds=3", "sets=[{source: ck2, destination: ckplus48}]"]
    out = tmp_path_factory.mktemp("leak") / "run"
    argv = ["experiment", "small", "--out", str(out), "--quiet", "--set", f"cache_dir={cache}"]
    argv += [a for s in ["faces.size=16", *leaky] for a in ("--set", s)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "sets[0] (ck2->ckplus48): in fold 1," in err[0]
    assert "that ckplus48 holds out are on ck2's training side" in err[0]
    assert "use one dataset name for both links" in err[0]
    assert not out.exists()
    from pathnet_fer.experiments.datasets import check_link_leaks

    with pytest.raises(ConfigError, match="holds out"):
        check_link_leaks(_config(cache, *leaky), {})
    check_link_leaks(_config(cache, *ck2, "sets=[{source: ck2, destination: ckplus48}]"), {})
    pooled = _config(
        cache,
        f"datasets.fer={{adapter: fer2013, root: {fer_tree}, folds: fixed}}",
        f"datasets.fer_test={{adapter: fer2013, root: {fer_tree}, splits: [test]}}",
        "datasets.pooled={union: [fer_test, ckplus48]}",
        "sets=[{source: fer, destination: pooled}]",
    )
    check_link_leaks(pooled, {})
