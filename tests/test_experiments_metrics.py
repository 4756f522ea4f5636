"""Metrics table, summaries, paired tests, figures, folds and held-out scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pathnet_fer.datasets.folds import exclude_subjects, fixed_split_fold, subject_folds
from pathnet_fer.experiments.figures import all_learning_curves, confusion_figures
from pathnet_fer.experiments.metrics_log import (
    COLUMNS,
    MetricsWriter,
    final_values,
    merge_metric_files,
    read_metrics,
    summarise,
)
from pathnet_fer.experiments.report import paired_comparison, write_report
from pathnet_fer.scoring.metrics import classification_metrics, clip_vote, evaluate_proba


def _synthetic_run(path, gap: float, n_folds=4, iterations=2, generations=20, seed=0):
    """A metrics file as the protocol writes it, with transfer better than scratch by ``gap``."""
    rng = np.random.default_rng(seed)
    with MetricsWriter(path, experiment="a->b") as log:
        for it in range(1, iterations + 1):
            for fold in range(1, n_folds + 1):
                for arm, shift in (("transfer", gap), ("scratch", 0.0)):
                    for g in range(1, generations + 1):
                        acc = min(1.0, 0.2 + 0.02 * g + shift)
                        log.log(
                            iteration=it,
                            fold=fold,
                            task="b",
                            arm=arm,
                            generation=g,
                            split="train",
                            level="minibatch",
                            metric="accuracy",
                            value=acc,
                        )
                        log.log(
                            iteration=it,
                            fold=fold,
                            task="b",
                            arm=arm,
                            generation=g,
                            split="train",
                            level="minibatch",
                            metric="loss",
                            value=2 - acc,
                        )
                    for g in (10, 20):
                        base = 0.3 + shift + 0.01 * fold + rng.normal(0, 0.01)
                        for level in ("frame", "clip"):
                            for metric in ("accuracy", "macro_f1", "uar"):
                                log.log(
                                    iteration=it,
                                    fold=fold,
                                    task="b",
                                    arm=arm,
                                    generation=g,
                                    split="test",
                                    level=level,
                                    metric=metric,
                                    value=base + g / 100,
                                )


def test_writer_validates_and_round_trips(tmp_path):
    path = tmp_path / "metrics.csv"
    _synthetic_run(path, gap=0.1)
    frame = read_metrics(tmp_path)
    assert tuple(frame.columns) == COLUMNS
    assert set(frame.arm) == {"transfer", "scratch"} and frame.value.dtype == float
    row = dict(
        iteration=1,
        fold=1,
        task="b",
        arm="x",
        generation=1,
        split="test",
        level="frame",
        metric="accuracy",
        value=1.0,
    )
    with MetricsWriter(path, experiment="a->b") as log:  # appending keeps one header
        log.log(**row | dict(arm="mlp", split="train", level="minibatch", metric="train_seconds"))
        for bad, match in (
            (dict(split="valid"), "split must be"),
            (dict(metric="acc"), "metric must be"),
            (dict(extra=2), "unknown columns"),
        ):
            with pytest.raises(ValueError, match=match):
                log.log(**row | bad)
    assert len(read_metrics(path)) == len(frame) + 1
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not the metrics contract"):
        MetricsWriter(bad)


def test_summary_final_values_and_paired_test(tmp_path):
    _synthetic_run(tmp_path / "metrics.csv", gap=0.1)
    metrics = read_metrics(tmp_path)
    final = final_values(metrics)
    test_rows = final[
        (final.split == "test") & (final.level == "frame") & (final.metric == "accuracy")
    ]
    assert set(test_rows.generation) == {20} and len(test_rows) == 2 * 4 * 2
    summary = summarise(metrics)
    row = summary[
        (summary.arm == "transfer")
        & (summary.split == "test")
        & (summary.level == "frame")
        & (summary.metric == "accuracy")
    ].iloc[0]
    assert row.n == 8 and row.n_folds == 4
    assert row["mean"] == pytest.approx(test_rows[test_rows.arm == "transfer"].value.mean())
    comp = paired_comparison(metrics, "a->b")
    assert comp["n_folds"] == 4 and comp["wins"] == 4
    assert comp["mean_diff"] == pytest.approx(0.1, abs=0.02)
    assert comp["p_ttest"] < 0.01
    # No difference -> no evidence.
    _synthetic_run(tmp_path / "same.csv", gap=0.0, seed=1)
    same = paired_comparison(read_metrics(tmp_path / "same.csv"), "a->b")
    assert abs(same["mean_diff"]) < 0.02 and same["p_wilcoxon"] > 0.05


def test_report_and_figures_include_every_arm(tmp_path):
    _synthetic_run(tmp_path / "part1.csv", gap=0.05)
    with MetricsWriter(tmp_path / "part2.csv", experiment="a->b") as log:
        for fold in range(1, 5):
            for metric, value in (("accuracy", 0.4), ("macro_f1", 0.35)):
                log.log(
                    iteration=1,
                    fold=fold,
                    task="b",
                    arm="resnet18-head",
                    generation=30,
                    split="test",
                    level="frame",
                    metric=metric,
                    value=value,
                )
            log.log(
                iteration=1,
                fold=fold,
                task="b",
                arm="resnet18-head",
                generation=30,
                split="train",
                level="minibatch",
                metric="train_seconds",
                value=12.0,
            )
    metrics = merge_metric_files(
        [tmp_path / "part2.csv", tmp_path / "part1.csv"], tmp_path / "metrics.csv"
    )
    paths = write_report(tmp_path, header="# test run")
    text = paths["summary_md"].read_text()
    assert "resnet18-head" in text and "transfer" in text and "Wilcoxon" in text
    assert "| transfer | b | 8 | 4 |" in text
    summary = pd.read_csv(paths["summary_csv"])
    assert set(summary.arm) == {"transfer", "scratch", "resnet18-head"}
    curves = all_learning_curves(metrics, tmp_path / "figures")
    assert [p.name for p in curves] == ["learning_curves_a-to-b.png"]
    assert curves[0].stat().st_size > 10_000
    conf = pd.DataFrame(
        [
            dict(
                experiment="a->b",
                arm="transfer",
                task="b",
                iteration=1,
                fold=f,
                level="frame",
                true=t,
                pred=p,
                count=c,
            )
            for f in (1, 2)
            for t, p, c in (("anger", "anger", 5), ("anger", "fear", 1), ("fear", "fear", 3))
        ]
    )
    figs = confusion_figures(conf, tmp_path / "figures")
    assert [p.name for p in figs] == ["confusion_a-to-b.png"]


def test_classification_metrics_and_clip_votes():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert classification_metrics(y, y, 3) == {"accuracy": 1.0, "macro_f1": 1.0, "uar": 1.0}
    m = classification_metrics(y, np.array([0, 0, 0, 0, 2, 2]), 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["uar"] == pytest.approx((1 + 0 + 1) / 3)
    # Three clips: frames disagree within clip "b"; majority vs mean-probability differ.
    proba = np.array(
        [
            [0.9, 0.1],
            [0.8, 0.2],  # clip a, label 0
            [0.45, 0.55],
            [0.45, 0.55],
            [0.99, 0.01],  # clip b, label 1
            [0.2, 0.8],
        ]
    )  # clip c, label 1
    labels = np.array([0, 0, 1, 1, 1, 1])
    clips = np.array(["a", "a", "b", "b", "b", "c"])
    ids, true, pred = clip_vote(proba, labels, clips, "majority")
    assert list(ids) == ["a", "b", "c"] and list(true) == [0, 1, 1] and list(pred) == [0, 1, 1]
    _, _, pred_mean = clip_vote(proba, labels, clips, "mean_proba")
    assert list(pred_mean) == [0, 0, 1]
    ev = evaluate_proba(proba, labels, clips, 2, vote="mean_proba")
    assert ev.n_frames == 6 and ev.n_clips == 3 and ev.clip["accuracy"] == pytest.approx(2 / 3)
    assert ev.frame_confusion.sum() == 6 and ev.clip_confusion.sum() == 3
    with pytest.raises(ValueError, match="different labels"):
        clip_vote(proba, np.array([0, 1, 1, 1, 1, 1]), clips)


def test_subject_folds_on_real_ckplus_labels(require_data):
    from pathnet_fer.data.registry import get_adapter

    samples = get_adapter("ckplus48").scan(require_data("ckplus48")).samples
    subjects = samples["subject"].to_numpy()
    labels = pd.factorize(samples["emotion"])[0]
    folds = subject_folds(subjects, labels, n_folds=6, seed=0)
    assert len(folds) == 6
    seen = np.concatenate([f.test_index for f in folds])
    assert sorted(seen) == list(range(len(samples)))  # every sample tested exactly once
    for fold in folds:
        assert not set(fold.train_subjects) & set(fold.test_subjects)
        assert set(subjects[fold.test_index]) == set(fold.test_subjects)
        assert len(np.intersect1d(fold.train_index, fold.test_index)) == 0
        # Stratified: every emotion in each test fold.
        assert len(set(labels[fold.test_index])) == labels.max() + 1
    again = subject_folds(subjects, labels, n_folds=6, seed=0)
    assert all(a.test_subjects == b.test_subjects for a, b in zip(folds, again, strict=True))
    keep = exclude_subjects(subjects, folds[0].test_subjects)
    assert not set(subjects[keep]) & set(folds[0].test_subjects)
    with pytest.raises(ValueError, match="cannot make 200 subject-independent folds"):
        subject_folds(subjects, labels, n_folds=200)
    fixed = fixed_split_fold(np.array(["train", "test", "train"]))
    assert list(fixed[0].test_index) == [1]


def test_loggers_fan_out_to_csv_console_and_tensorboard(tmp_path, capsys):
    import io

    from pathnet_fer.experiments.loggers import (
        ConsoleLogger,
        CSVLogger,
        LoggerGroup,
        RunKey,
        TensorBoardLogger,
    )

    stream = io.StringIO()
    loggers = [CSVLogger(tmp_path / "metrics.csv"), ConsoleLogger(every=2, stream=stream)]
    try:
        import tensorboard  # noqa: F401

        loggers.append(TensorBoardLogger(tmp_path / "tb"))
    except ImportError:
        pass
    group = LoggerGroup(loggers)
    key = RunKey("a->b", 1, 2, "b", "transfer")
    for g in range(1, 5):
        group.log_values(key, g, "train", "minibatch", {"accuracy": g / 4, "loss": 1 / g})
    group.log_values(key, 4, "test", "frame", {"accuracy": 0.5, "macro_f1": 0.4})
    group.close()
    frame = read_metrics(tmp_path / "metrics.csv")
    assert len(frame) == 10 and set(frame.fold) == {2} and set(frame.arm) == {"transfer"}
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "gen 4] test: accuracy=0.500" in lines[-1]  # gens 2, 4 + test
    if len(loggers) == 3:
        events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
        assert len(events) == 1 and events[0].stat().st_size > 0
        assert "a-to-b/transfer/it1_fold2" in str(events[0].parent)


def test_collapse_and_calibration_figures_are_reported():
    """A model that answers one emotion for every face is flagged by top_share = 1, and
    its confidence (mean max-probability) sits beside its accuracy."""
    from pathnet_fer.scoring.metrics import evaluate_proba

    labels = np.array([0, 1, 2, 3, 4, 5] * 4)
    clips = np.array([f"c{i // 2}" for i in range(len(labels))])
    labels = np.repeat(labels[::2], 2)  # two frames per clip, same label
    collapsed = np.full((len(labels), 6), 0.01)
    collapsed[:, 3] = 0.95
    ev = evaluate_proba(collapsed, labels, clips, 6)
    assert ev.frame["top_share"] == 1.0 and ev.clip["top_share"] == 1.0
    assert ev.frame["confidence"] == pytest.approx(0.95)
    assert ev.frame["accuracy"] == pytest.approx(np.mean(labels == 3))
    perfect = np.eye(6)[labels] * 0.5 + 0.5 / 6
    ev = evaluate_proba(perfect, labels, clips, 6)
    assert ev.frame["accuracy"] == 1.0
    assert ev.frame["top_share"] == pytest.approx(np.bincount(labels).max() / len(labels))
    assert ev.frame["confidence"] == pytest.approx(0.5 + 0.5 / 6)
