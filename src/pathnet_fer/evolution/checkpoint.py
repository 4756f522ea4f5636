"""One-file checkpoints of a net and its running task; resuming is exact on CPU."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

import pathnet_fer
from pathnet_fer.evolution.config import EvolutionConfig
from pathnet_fer.evolution.events import GenerationEvent
from pathnet_fer.evolution.task import Task
from pathnet_fer.pathnet.config import PathNetConfig, config_differences
from pathnet_fer.pathnet.device import resolve_device
from pathnet_fer.pathnet.supernet import PathNet
from pathnet_fer.safe_load import UnsafeFileError, load_plain

FORMAT = "pathnet-fer-checkpoint"
VERSION = 1


def save_checkpoint(
    path: str | Path, net: PathNet, task: Task | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write net (+ task) state atomically (temp file then rename: a kill never leaves a
    half-written checkpoint). ``extra``: any picklable metadata (e.g. the run config)."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "net": net.state(),
        "task": None if task is None else task.state(),
        "extra": extra or {},
        "versions": {
            "pathnet_fer": pathnet_fer.__version__,
            "torch": str(torch.__version__),
            "python": platform.python_version(),
        },
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    path: str | Path,
    device: str | torch.device = "auto",
    expect_net_config: PathNetConfig | None = None,
    expect_evolution_config: EvolutionConfig | None = None,
    expect_runs: int | None = None,
) -> tuple[PathNet, Task | None, dict[str, Any]]:
    """Load ``(net, task, extra)``. With ``expect_*`` given, a checkpoint made with other
    settings is refused with a message naming every differing field
    (``generations`` may differ: a task can be extended)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = load_plain(path, "pathnet-fer checkpoint")
    except UnsafeFileError:
        raise
    except Exception as err:  # truncated or foreign file
        raise ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pathnet-fer checkpoint")
    if payload.get("version") != VERSION:
        raise ValueError(
            f"checkpoint {path} has format version {payload.get('version')}, "
            f"this code reads version {VERSION}"
        )
    problems = []
    if expect_net_config is not None:
        # Through PathNetConfig: a checkpoint written before a setting existed compares
        # with that setting's default.
        stored = PathNetConfig.from_dict(payload["net"]["config"]).to_dict()
        diff = config_differences(stored, expect_net_config.to_dict())
        problems += [f"PathNetConfig.{d}" for d in diff]
    if expect_runs is not None and payload["net"]["runs"] != expect_runs:
        problems.append(f"runs: {payload['net']['runs']} != {expect_runs}")
    if expect_evolution_config is not None:
        if payload["task"] is None:
            problems.append("task: checkpoint holds no task")
        else:
            diff = config_differences(payload["task"]["config"], expect_evolution_config.to_dict())
            problems += [f"EvolutionConfig.{d}" for d in diff if not d.startswith("generations:")]
    if problems:
        raise ValueError(
            f"checkpoint {path} was made with a different configuration "
            f"(checkpoint != expected): {'; '.join(problems)}"
        )
    dev = resolve_device(device)
    net = PathNet.from_state(payload["net"], device=dev)
    task = None if payload["task"] is None else Task.from_state(payload["task"], dev)
    return net, task, payload["extra"]


class CheckpointEvery:
    """Callback: save the net and task every ``every`` generations (and on the last one)."""

    def __init__(
        self, path: str | Path, every: int = 50, extra: dict[str, Any] | None = None
    ) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self.path = Path(path)
        self.every = every
        self.extra = extra

    def __call__(self, event: GenerationEvent) -> None:
        last = event.generation >= event.task.config.generations
        if event.generation % self.every == 0 or last:
            save_checkpoint(self.path, event.net, event.task, self.extra)
