"""Long-format metrics: one row per value, shared by PathNet experiments and baselines.

Contract (docs/architecture.md): columns ``experiment, iteration, fold, task, arm,
generation, split, level, metric, value``. Long format keeps every stage free to add arms
and metrics without schema changes, and is what pandas pivots and seaborn-style plots want.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS: tuple[str, ...] = (
    "experiment",
    "iteration",
    "fold",
    "task",
    "arm",
    "generation",
    "split",
    "level",
    "metric",
    "value",
)
SPLITS: frozenset[str] = frozenset({"train", "test"})
LEVELS: frozenset[str] = frozenset({"minibatch", "frame", "clip"})
METRICS: frozenset[str] = frozenset(
    {
        "accuracy",
        "loss",
        "macro_f1",
        "uar",
        "train_seconds",
        "parameters",
        "top_share",  # share of the most frequent predicted class (collapse check)
        "confidence",  # mean max-probability (calibration: compare with accuracy)
        "forgetting",  # held-out accuracy at a link's end minus after the whole chain
        "samples",  # training budget of the task in samples seen (baselines write it)
    }
)
_DTYPES = {
    "experiment": str,
    "iteration": int,
    "fold": int,
    "task": str,
    "arm": str,
    "generation": int,
    "split": str,
    "level": str,
    "metric": str,
    "value": float,
}


def validate_row(row: Mapping[str, object]) -> dict[str, object]:
    """Check one row against the contract; raise ValueError naming the bad field."""
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ValueError(f"metrics row is missing columns {missing}: {dict(row)}")
    extra = sorted(set(row) - set(COLUMNS))
    if extra:
        raise ValueError(f"metrics row has unknown columns {extra}; allowed: {list(COLUMNS)}")
    out = {c: _DTYPES[c](row[c]) for c in COLUMNS}  # type: ignore[operator]
    if out["split"] not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {out['split']!r}")
    if out["level"] not in LEVELS:
        raise ValueError(f"level must be one of {sorted(LEVELS)}, got {out['level']!r}")
    if out["metric"] not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {out['metric']!r}")
    if not out["arm"] or not out["experiment"] or not out["task"]:
        raise ValueError(f"experiment, task and arm must be non-empty: {dict(row)}")
    return out


class MetricsWriter:
    """Append rows to a ``metrics.csv`` (header written once); buffered, flushed on close.

    Usage::

        with MetricsWriter(run_dir / "metrics.csv", experiment="ckplus48->jaffe") as log:
            log.log(iteration=1, fold=0, task="jaffe", arm="transfer", generation=50,
                    split="test", level="frame", metric="accuracy", value=0.61)
    """

    def __init__(self, path: str | Path, experiment: str | None = None, flush_every: int = 2000):
        self.path = Path(path)
        self.experiment = experiment
        self.flush_every = flush_every
        self._buffer: list[dict[str, object]] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size == 0:
            with self.path.open("w", newline="") as fh:
                csv.writer(fh).writerow(COLUMNS)
        else:
            with self.path.open(newline="") as fh:
                header = next(csv.reader(fh), None)
            if header is not None and tuple(header) != COLUMNS:
                raise ValueError(
                    f"{self.path} exists with columns {header}, not the metrics contract "
                    f"{list(COLUMNS)}; choose another output file"
                )

    def log(self, **row: object) -> None:
        """Log one value; ``experiment`` defaults to the writer's."""
        if "experiment" not in row and self.experiment is not None:
            row["experiment"] = self.experiment
        self._buffer.append(validate_row(row))
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def log_many(self, rows: Iterable[Mapping[str, object]]) -> None:
        """Log several rows (dicts with the contract's columns)."""
        for row in rows:
            self.log(**dict(row))

    def log_frame(self, frame: pd.DataFrame) -> None:
        """Log every row of a DataFrame with the contract's columns."""
        self.log_many(frame.to_dict("records"))

    def flush(self) -> None:
        """Write buffered rows to disk."""
        if not self._buffer:
            return
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            for row in self._buffer:
                value = row["value"]
                writer.writerow({**row, "value": repr(value) if math.isfinite(value) else value})
        self._buffer.clear()

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rows(
    *,
    experiment: str,
    iteration: int,
    fold: int,
    task: str,
    arm: str,
    generation: int,
    split: str,
    level: str,
    values: Mapping[str, float],
) -> list[dict[str, object]]:
    """Several metrics sharing every other column, as rows ready for ``log_many``."""
    return [
        validate_row(
            dict(
                experiment=experiment,
                iteration=iteration,
                fold=fold,
                task=task,
                arm=arm,
                generation=generation,
                split=split,
                level=level,
                metric=metric,
                value=float(value),
            )
        )
        for metric, value in values.items()
    ]


def read_metrics(path: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read one metrics.csv (a run directory or the file) or several, with typed columns."""
    if isinstance(path, (str, Path)):
        paths = [Path(path)]
    else:
        paths = [Path(p) for p in path]
    paths = [p / "metrics.csv" if p.is_dir() else p for p in paths]
    frames = []
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"no metrics file at {p}")
        frame = pd.read_csv(p, dtype={"experiment": str, "task": str, "arm": str})
        if tuple(frame.columns) != COLUMNS:
            raise ValueError(f"{p} has columns {list(frame.columns)}, expected {list(COLUMNS)}")
        _refuse_duplicates(frame, str(p))
        frames.append(frame)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    if len(frames) > 1:
        _refuse_duplicates(out, f"{len(frames)} metrics files")
    return out.astype({"iteration": int, "fold": int, "generation": int, "value": float})


KEY_COLUMNS: tuple[str, ...] = COLUMNS[:-1]
"""One value per key: two rows with the same key mean two writers (or a copy) mixed."""


def _refuse_duplicates(frame: pd.DataFrame, where: str) -> None:
    dup = frame.duplicated(list(KEY_COLUMNS), keep=False)
    if dup.any():
        first = frame.loc[dup, list(KEY_COLUMNS)].iloc[0].to_dict()
        raise ValueError(
            f"{where}: {int(dup.sum())} rows share their key with another row (e.g. {first}); "
            "two commands wrote one run, or rows were appended twice: re-run the job(s) "
            "into a fresh --out"
        )


def final_values(metrics: pd.DataFrame) -> pd.DataFrame:
    """The last-generation value of each metric of each run (experiment, iteration, fold, arm).

    Training rows use the final generation's value; held-out rows the final evaluation.
    """
    keys = ["experiment", "iteration", "fold", "task", "arm", "split", "level", "metric"]
    if metrics.empty:
        return metrics.copy()
    last = metrics.groupby(keys, sort=False)["generation"].transform("max")
    out = metrics[metrics["generation"] == last]
    return out.drop_duplicates(keys, keep="last").reset_index(drop=True)


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count over folds x iterations of each final metric.

    One row per ``experiment, arm, task, split, level, metric``; ``n`` counts runs
    (fold x iteration pairs), ``n_folds`` distinct folds. Any arm present is summarised,
    so baselines' arms appear beside PathNet's.
    """
    final = final_values(metrics)
    group = ["experiment", "arm", "task", "split", "level", "metric"]
    if final.empty:
        return pd.DataFrame(columns=[*group, "mean", "std", "n", "n_folds", "generation"])
    agg = final.groupby(group, sort=False).agg(
        mean=("value", "mean"),
        std=("value", lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0),
        n=("value", "size"),
        n_folds=("fold", "nunique"),
        generation=("generation", "max"),
    )
    return agg.reset_index()


def merge_metric_files(parts: Iterable[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate per-job metric files into one ``metrics.csv`` (sorted, deterministic)."""
    parts = sorted(Path(p) for p in parts)
    frame = read_metrics(parts) if parts else read_metrics([])
    order = [
        "experiment",
        "arm",
        "iteration",
        "fold",
        "task",
        "generation",
        "split",
        "level",
        "metric",
    ]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    frame.to_csv(out, index=False, columns=list(COLUMNS))
    return frame
