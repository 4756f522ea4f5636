"""Figures from the metrics table: learning curves (paper Figs. 3-8) and confusion matrices.

Everything is drawn from DataFrames (metrics.csv, confusion.csv), so a report can be
re-drawn from a finished run directory without recomputing anything.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from pathnet_fer.experiments.arms import PAIRED, rows_of
from pathnet_fer.names import slug
from pathnet_fer.scoring.reliability_figure import save_figure

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ARM_COLOURS = {"transfer": "tab:blue", "scratch": "tab:orange", "source": "tab:grey"}
PANELS = (
    ("train", "minibatch", "accuracy", "training accuracy (paper-style)"),
    ("train", "minibatch", "loss", "training loss"),
    ("test", "frame", "accuracy", "held-out accuracy (frame)"),
    ("test", "frame", "macro_f1", "held-out macro-F1 (frame)"),
)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def learning_curves(
    metrics: pd.DataFrame,
    experiment: str,
    path: str | Path,
    arms: tuple[str, ...] = ("transfer", "scratch"),
    smooth: int | None = None,
) -> Path:
    """Accuracy and loss per generation for one set, transfer vs scratch: the mean over
    runs (folds x iterations) with a +/- one standard deviation band. Training curves are
    smoothed per run by a running mean (window ``smooth``, default 2% of the
    generations) because single generations are noisy. PNG (300 dpi) and PDF."""
    data = metrics[(metrics.experiment == experiment) & metrics.arm.isin(arms)]
    if data.empty:
        raise ValueError(f"no metrics for experiment {experiment!r} and arms {arms}")
    panels = [
        p
        for p in PANELS
        if ((data.split == p[0]) & (data.level == p[1]) & (data.metric == p[2])).any()
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    n_runs = data.groupby(["iteration", "fold"]).ngroups
    for ax, (split, level, metric, title) in zip(axes[0], panels, strict=True):
        sel = data[(data.split == split) & (data.level == level) & (data.metric == metric)]
        for arm in arms:
            # One curve per run (iteration x fold), then mean and spread over runs.
            per_run = (
                rows_of(sel, arm)
                .groupby(["generation", "iteration", "fold"])["value"]
                .mean()
                .unstack(["iteration", "fold"])
                .sort_index()
            )
            if per_run.empty:
                continue
            values = per_run.to_numpy(dtype=np.float64)
            if split == "train":
                window = smooth or max(1, len(values) // 50)
                values = np.stack([_smooth(v, window) for v in values.T], axis=1)
            mean = np.nanmean(values, axis=1)
            spread = np.nanstd(values, axis=1)
            colour = ARM_COLOURS.get(arm)
            ax.plot(
                per_run.index,
                mean,
                "-",
                color=colour,
                lw=1.4,
                label=f"{arm}, mean of {values.shape[1]} runs",
                marker="o" if split == "test" and len(mean) < 30 else None,
                ms=3,
            )
            if values.shape[1] > 1:
                ax.fill_between(
                    per_run.index, mean - spread, mean + spread, color=colour, alpha=0.2, lw=0
                )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
        if metric != "loss":
            ax.set_ylim(0, 1)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False
    )
    n_folds = data.fold.nunique()
    fig.suptitle(
        f"{experiment}: transfer vs scratch, mean +/- std over {n_runs} runs "
        f"({n_folds} folds x {data.iteration.nunique()} iterations)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.08 + 0.03 * ((len(labels) - 1) // 4), 1, 0.95))
    return save_figure(fig, path)


def _draw_confusion(ax, matrix: np.ndarray, class_names: list[str], title: str) -> None:
    matrix = np.asarray(matrix, dtype=np.float64)
    rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    n = len(class_names)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{rates[i, j]:.2f}\n({int(matrix[i, j])})",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if rates[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n), class_names, fontsize=7)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title, fontsize=9)


def confusion_figure(
    matrix: np.ndarray, class_names: list[str], title: str, path: str | Path
) -> Path:
    """Row-normalised confusion matrix with counts, true classes down, predictions across."""
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    _draw_confusion(ax, matrix, class_names, title)
    fig.tight_layout()
    return save_figure(fig, path)


def _confusion_table(sel: pd.DataFrame) -> pd.DataFrame:
    """Counts summed over runs, true classes down, predictions across (same order)."""
    names = list(dict.fromkeys(sel["true"].tolist() + sel["pred"].tolist()))
    table = sel.pivot_table(
        index="true", columns="pred", values="count", aggfunc="sum", fill_value=0
    )
    return table.reindex(index=names, columns=names, fill_value=0)


def confusion_levels(part: pd.DataFrame) -> list[str]:
    """The levels one experiment's confusion figure shows: ``frame`` and ``clip``, or
    only ``frame`` where the clip matrices equal the frame ones for every arm (image
    datasets: every clip is one frame, so the clip vote changes nothing)."""
    levels = [lv for lv in ("frame", "clip") if (part.level == lv).any()]
    if levels != ["frame", "clip"]:
        return levels
    for _, rows in part.groupby("arm", sort=False):
        frame = _confusion_table(rows[rows.level == "frame"])
        clip = _confusion_table(rows[rows.level == "clip"])
        if set(clip.index) != set(frame.index):
            return levels
        if not frame.equals(clip.reindex(index=frame.index, columns=frame.columns)):
            return levels
    return ["frame"]


def confusion_figures(confusions: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One figure per experiment set: a panel per arm (rows) and level (frame, clip),
    each summed over folds and iterations, rows normalised (counts in brackets). Where
    the clip level equals the frame level (one frame per clip, as in image datasets)
    there is one panel per arm, titled as both.

    ``confusions`` columns: experiment, arm, task, iteration, fold, level, true, pred, count
    (class names, not indices).
    """
    paths = []
    for experiment, part in confusions.groupby("experiment", sort=False):
        order = {"source": 0, "transfer": 1, "scratch": 2}
        arms = sorted(dict.fromkeys(part["arm"]), key=lambda a: (order.get(a, 3), a))
        levels = confusion_levels(part)
        both = levels == ["frame"] and (part.level == "clip").any()
        fig, axes = plt.subplots(
            len(arms), len(levels), squeeze=False, figsize=(4.4 * len(levels), 4.0 * len(arms))
        )
        for i, arm in enumerate(arms):
            for j, level in enumerate(levels):
                sel = rows_of(part, arm)
                sel = sel[sel.level == level]
                table = _confusion_table(sel)
                runs = sel.groupby(["iteration", "fold"]).ngroups
                task = sel["task"].iloc[0]
                what = "frame = clip level (one frame per clip)" if both else f"{level} level"
                _draw_confusion(
                    axes[i][j],
                    table.to_numpy(),
                    list(table.index),
                    f"{arm} on {task}, {what} ({runs} runs)",
                )
        fig.suptitle(f"{experiment}: held-out confusion (sum over folds x iterations)", fontsize=10)
        fig.tight_layout()
        paths.append(save_figure(fig, Path(out_dir) / f"confusion_{slug(experiment)}.png"))
    return paths


def all_learning_curves(metrics: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """A learning-curve figure per experiment set that has rows of the paired arms
    (transfer, scratch)."""
    paths = []
    for experiment in metrics.experiment.unique():
        of_set = metrics[metrics.experiment == experiment]
        arms = tuple(a.name for a in PAIRED if len(rows_of(of_set, a)))
        if arms:
            paths.append(
                learning_curves(
                    metrics,
                    experiment,
                    Path(out_dir) / f"learning_curves_{slug(experiment)}.png",
                    arms,
                )
            )
    return paths
