"""Report: rows trained on another sample budget are flagged; confusion panels per level
only where the levels differ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pathnet_fer.experiments.figures import confusion_figures, confusion_levels
from pathnet_fer.experiments.metrics_log import MetricsWriter, merge_metric_files, read_metrics
from pathnet_fer.experiments.report import write_report
from pathnet_fer.scoring.metrics import evaluate_proba
from pathnet_fer.scoring.reliability_figure import PNG_DPI

GENERATIONS = 5
MINIBATCHES, BATCH = 10, 16  # the run's evolution settings: 2 x 10 x 16 = 320 per generation
PATHNET_BUDGET = GENERATIONS * 2 * MINIBATCHES * BATCH  # 1,600 samples per task


def _pathnet_part(path):
    """transfer and scratch rows as the protocol writes them (no budget row: derived)."""
    with MetricsWriter(path, experiment="a->b") as log:
        for fold in (1, 2, 3):
            for arm in ("source", "transfer", "scratch"):
                task = "a" if arm == "source" else "b"
                for g in range(1, GENERATIONS + 1):
                    log.log(iteration=1, fold=fold, task=task, arm=arm, generation=g,
                            split="train", level="minibatch", metric="accuracy", value=0.1 * g)  # fmt: skip
                for metric in ("accuracy", "macro_f1"):
                    log.log(iteration=1, fold=fold, task=task, arm=arm, generation=GENERATIONS,
                            split="test", level="frame", metric=metric, value=0.5 + 0.01 * fold)  # fmt: skip


def _baseline_part(path, budgets: dict[str, int]):
    """Baseline rows written by the baselines' own ``log_rows`` with these budgets."""
    from pathnet_fer.baselines.arm_training import RunContext, log_rows
    from pathnet_fer.baselines.sgd_training import TrainingLog

    ev = evaluate_proba(np.eye(2)[[0, 1, 1, 0]], np.array([0, 1, 1, 1]), np.arange(4), 2)
    with MetricsWriter(path) as log:
        for fold in (1, 2, 3):
            for arm, samples in budgets.items():
                ctx = RunContext("a->b", 1, fold, "b", 2, 0, samples, samples, "cpu")
                train = TrainingLog(loss=[1.0] * 100, accuracy=[0.5] * 100)
                log.log_many(log_rows(ctx, arm, train, 1.0, 10, ev))


def _report(run_dir, budgets: dict[str, int]):
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(
        f"evolution:\n  minibatches: {MINIBATCHES}\n  batch_size: {BATCH}\n"
    )
    _pathnet_part(run_dir / "p1.csv")
    _baseline_part(run_dir / "p2.csv", budgets)
    metrics = merge_metric_files([run_dir / "p1.csv", run_dir / "p2.csv"], run_dir / "metrics.csv")
    paths = write_report(run_dir, metrics, header="# 5 generations per task")
    return paths["summary_md"].read_text(), pd.read_csv(paths["summary_csv"]), paths


def _row(text: str, arm: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(f"| {arm} "))
    return [c.strip() for c in line.strip("|").split("|")]


def test_no_flag_when_every_arm_had_the_pathnet_budget(tmp_path):
    text, summary, _ = _report(tmp_path / "run", {"mlp-scratch": PATHNET_BUDGET, "logreg": 0})
    assert "†" not in text
    header = _row(text, "arm")
    assert header[:5] == ["arm", "task", "runs", "folds", "samples"]
    for arm in ("transfer", "scratch", "mlp-scratch"):
        assert _row(text, arm)[4] == f"{PATHNET_BUDGET:,}", arm
    assert _row(text, "source")[4] == f"{PATHNET_BUDGET:,}"
    # logreg writes no budget (it fits to convergence): shown as n/a and said why.
    assert _row(text, "logreg")[4] == "n/a" and "logreg fits to convergence" in text
    budgets = summary[summary.metric == "samples"].set_index("arm")["mean"]
    assert budgets.to_dict() == {a: PATHNET_BUDGET for a in
                                 ("source", "transfer", "scratch", "mlp-scratch")}  # fmt: skip


def test_rows_with_another_budget_are_flagged_with_it(tmp_path):
    text, summary, paths = _report(
        tmp_path / "run", {"mlp-scratch": PATHNET_BUDGET, "cifar-scratch": 800}
    )
    assert _row(text, "cifar-scratch †")[4] == "800"
    for arm in ("transfer", "scratch", "mlp-scratch"):
        assert _row(text, arm)[0] == arm  # not flagged
    footnote = next(x for x in text.splitlines() if x.startswith("† "))
    assert f"transfer's {PATHNET_BUDGET:,} samples per task ({GENERATIONS} generations)" in footnote
    assert "cifar-scratch 800" in footnote and "mlp-scratch" not in footnote
    assert text.count("†") == 2  # the row and its footnote
    assert r"cifar-scratch $^{\dagger}$" in paths["summary_tex"].read_text()
    written = read_metrics(tmp_path / "run" / "metrics.csv")
    assert set(written[written.metric == "samples"].arm) == {"mlp-scratch", "cifar-scratch"}
    assert (
        summary[(summary.arm == "cifar-scratch") & (summary.metric == "samples")]["mean"].item()
        == 800
    )


def _confusion_rows(clips: np.ndarray, seed: int) -> pd.DataFrame:
    """confusion.csv rows of two arms, made as the protocol makes them."""
    rng = np.random.default_rng(seed)
    ids, codes = np.unique(clips, return_inverse=True)
    labels = codes % 3  # one label per clip
    names = ("anger", "fear", "happiness")
    rows = []
    for arm in ("transfer", "scratch"):
        proba = rng.dirichlet(np.ones(3), size=len(clips))
        ev = evaluate_proba(proba, labels, clips, 3)
        for level, matrix in (("frame", ev.frame_confusion), ("clip", ev.clip_confusion)):
            for t in range(3):
                for p in range(3):
                    rows.append(dict(experiment="a->b", arm=arm, task="b", iteration=1, fold=1,
                                     level=level, true=names[t], pred=names[p],
                                     count=int(matrix[t, p])))  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("clips", "panels"),
    [
        (np.array([f"img{i}" for i in range(60)]), 1),  # images: every clip is one frame
        (np.repeat([f"clip{i}" for i in range(12)], 5), 2),  # videos: 5 frames per clip
    ],
    ids=["image-dataset", "video-dataset"],
)
def test_confusion_figure_shows_the_clip_level_only_where_it_differs(tmp_path, clips, panels):
    conf = _confusion_rows(clips, seed=1)
    assert confusion_levels(conf) == ["frame", "clip"][:panels]
    (path,) = confusion_figures(conf, tmp_path)
    width, height = Image.open(path).size
    assert width == round(4.4 * panels * PNG_DPI)  # one column of panels per level
    assert height == round(4.0 * 2 * PNG_DPI)  # two arms
