"""Task data: what the user passes (TaskData) and its validated device form (PreparedData)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class TaskData:
    """Training data of one run: features ``x (n, D)`` in [0, 1], integer labels ``y (n,)``.

    ``x_val``/``y_val`` (optional) are a validation split, used when
    ``EvolutionConfig.fitness == "heldout"``. Numpy arrays or tensors are accepted.
    """

    x: Any
    y: Any
    x_val: Any = None
    y_val: Any = None
    name: str = ""
    targets: Any = None  # (n, C) target distributions (soft labels); None = one-hot of y


def _as_features(x: Any, what: str, input_dim: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.dim() != 2 or t.shape[1] != input_dim:
        raise ValueError(f"{what} must have shape (n, {input_dim}), got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(
            f"{what} must be floating point features (e.g. pixels / 255), got {t.dtype}"
        )
    if t.shape[0] == 0:
        raise ValueError(f"{what} is empty: a task needs at least one sample")
    t = t.to(torch.float32)
    for start in range(0, t.shape[0], 8192):  # chunked: no full-size temporary
        if not bool(torch.isfinite(t[start : start + 8192]).all()):
            raise ValueError(f"{what} contains NaN or infinite values")
    return t


def _as_labels(y: Any, what: str, n: int, n_classes: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(
            f"{what} must have shape ({n},) to match the features, got {tuple(t.shape)}"
        )
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"{what} must be integer class indices, got {t.dtype}")
    t = t.to(torch.int64)
    if int(t.min()) < 0 or int(t.max()) >= n_classes:
        raise ValueError(
            f"{what} must be class indices in [0, {n_classes}), got [{int(t.min())}, {int(t.max())}]"
        )
    return t


def _as_targets(t: Any, what: str, n: int, n_classes: int) -> torch.Tensor:
    """Soft targets as float32 rows summing to 1 (counts are normalised)."""
    t = torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t)
    if t.dim() != 2 or tuple(t.shape) != (n, n_classes):
        raise ValueError(f"{what} must have shape ({n}, {n_classes}), got {tuple(t.shape)}")
    t = t.to(torch.float32)
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ValueError(f"{what} must be finite and non-negative")
    total = t.sum(1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError(f"{what}: {int((total <= 0).sum())} rows hold no weight on any class")
    return t / total


@dataclass
class PreparedData:
    """All runs' training rows concatenated on the device (a run's rows are
    ``offsets[r] : offsets[r] + sizes[r]``; runs given the same TaskData share rows)."""

    x: torch.Tensor
    y: torch.Tensor
    offsets: list[int]
    sizes: list[int]
    x_val: list[torch.Tensor | None]
    y_val: list[torch.Tensor | None]
    fingerprint: list[dict[str, Any]]
    targets: torch.Tensor | None = None  # (total, C) rows aligned with x; None = one-hot

    def run_rows(self, run: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, n = self.offsets[run], self.sizes[run]
        return self.x[s : s + n], self.y[s : s + n]


def fingerprint(x: torch.Tensor, y: torch.Tensor, chunk: int = 8192) -> dict[str, Any]:
    """A cheap identity of a data set (shape, sums, label counts) to catch a resume on other
    data. Computed in row chunks so a large set needs no float64 copy."""
    total = total_sq = weighted = 0.0
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk].to(torch.float64)
        rows = part.sum(1)
        total += float(rows.sum())
        total_sq += float((part * part).sum())
        position = torch.arange(start + 1, start + 1 + part.shape[0], dtype=torch.float64)
        weighted += float((rows * position).sum())
    return {
        "n": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "sum": round(total, 6),
        "sum_sq": round(total_sq, 6),
        "weighted": round(weighted, 3),
        "labels": torch.bincount(y).tolist(),
    }


def prepare_data(
    data: TaskData | list[TaskData] | tuple[TaskData, ...],
    runs: int,
    input_dim: int,
    n_classes: int,
    device: torch.device,
    need_val: bool,
) -> PreparedData:
    """Validate the data of every run and put it on the device."""
    if isinstance(data, TaskData):
        items = [data] * runs
    elif isinstance(data, list | tuple) and all(isinstance(d, TaskData) for d in data):
        items = list(data)
        if len(items) != runs:
            raise ValueError(f"got TaskData for {len(items)} runs but the net has {runs} runs")
    else:
        raise TypeError("data must be a TaskData or a list of TaskData (one per run)")
    xs, ys, offsets, sizes, xv, yv, fps, ts = [], [], [], [], [], [], [], []
    soft = any(item.targets is not None for item in items)
    seen: dict[int, int] = {}
    total = 0
    for r, item in enumerate(items):
        label = f"run {r} ({item.name})" if item.name else f"run {r}"
        if id(item) in seen:
            src = seen[id(item)]
            offsets.append(offsets[src])
            sizes.append(sizes[src])
            xv.append(xv[src])
            yv.append(yv[src])
            fps.append(fps[src])
            continue
        seen[id(item)] = r
        x = _as_features(item.x, f"{label}: x", input_dim)
        y = _as_labels(item.y, f"{label}: y", x.shape[0], n_classes)
        xs.append(x)
        ys.append(y)
        offsets.append(total)
        sizes.append(int(x.shape[0]))
        total += int(x.shape[0])
        fps.append(fingerprint(x, y))
        if soft:  # runs without soft targets train on their one-hot labels
            if item.targets is None:
                ts.append(torch.nn.functional.one_hot(y, n_classes).to(torch.float32))
            else:
                ts.append(_as_targets(item.targets, f"{label}: targets", x.shape[0], n_classes))
                fps[-1]["targets"] = round(float((ts[-1] * torch.arange(n_classes)).sum()), 4)
        if item.x_val is not None or item.y_val is not None:
            if item.x_val is None or item.y_val is None:
                raise ValueError(f"{label}: give both x_val and y_val, or neither")
            v = _as_features(item.x_val, f"{label}: x_val", input_dim)
            xv.append(v.to(device))
            yv.append(_as_labels(item.y_val, f"{label}: y_val", v.shape[0], n_classes).to(device))
        elif need_val:
            raise ValueError(f"{label}: fitness='heldout' needs x_val/y_val in its TaskData")
        else:
            xv.append(None)
            yv.append(None)
    return PreparedData(
        x=torch.cat(xs).to(device),
        y=torch.cat(ys).to(device),
        offsets=offsets,
        sizes=sizes,
        x_val=xv,
        y_val=yv,
        fingerprint=fps,
        targets=torch.cat(ts).to(device) if soft else None,
    )
