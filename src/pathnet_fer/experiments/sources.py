"""Shared sources: a source unit is evolved once and reused by every fold, set and study.

A source unit's result (its net with the best path fixed, the path, the readout, its
held-out score and metric rows) is saved as a content-addressed artifact: the key hashes
everything the result depends on (the data's content, the exact training and test rows,
the PathNet and evolution settings with the source budget, the unit's seed, the device
kind, the evaluation settings and this format's version). The same key means the same
result, so it is reused; any changed setting is another key and trains anew. Artifacts
live in the run directory (``sources/<key>.pt``, so a run is self-contained) and, with
``protocol.reuse_sources``, in the shared store ``<cache>/sources/`` for other studies.

An artifact is verified before it is reused, since a file under a key may not be what the
key names (copied over, edited, truncated by a full disk): it must read back, carry its
own key, and match the sha256 of its content stored inside it. One that does not is
reported in one line naming the file and trained again (the store's entry rewritten),
as the face cache rebuilds a damaged entry.

The store itself is ``source_store.py``; what a chain's later links did to its source is
``after_chain.py``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pathnet_fer.datasets.loading import LoadedDataset, face_settings_for, load_dataset
from pathnet_fer.evolution import load_checkpoint
from pathnet_fer.experiments.calibration import save_heldout
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.datasets import net_config_for
from pathnet_fer.experiments.export import training_prior_metadata
from pathnet_fer.experiments.phase_runner import run_phase, write_json
from pathnet_fer.experiments.phases import Phase, describe_rows, source_phase
from pathnet_fer.experiments.plan import JobSpec, users_of
from pathnet_fer.experiments.progress import JobProgress
from pathnet_fer.experiments.run_dir import staged_models
from pathnet_fer.experiments.source_store import (
    FORMAT,
    VERSION,
    ArtifactError,
    content_digest,
    load_artifact,
    reuse_run_copy,
    reuse_store_entry,
    save_artifact,
    source_key,
    store_dir,
)
from pathnet_fer.formats.model_file import save_model
from pathnet_fer.pathnet import PathNet


@dataclass
class FinishedTask:
    """What inference needs of a finished, fixed task: per run its best path and readout
    (``predict_proba`` and ``path_model`` accept it like a Task)."""

    name: str
    class_names: tuple[str, ...]
    best_paths: torch.Tensor  # (R, L, N)
    readout_weight: torch.Tensor  # (R, C, F)
    readout_bias: torch.Tensor  # (R, C)
    test_accuracy: list[float]  # held-out frame accuracy at the end of its link, per run
    fixed_into_net: bool = True

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @classmethod
    def of(cls, task: Any, phase: Phase, test_accuracy: list[float]) -> FinishedTask:
        return cls(
            name=task.name,
            class_names=tuple(phase.class_names),
            best_paths=task.best_paths.clone(),
            readout_weight=task.readout_weight.detach().cpu().clone(),
            readout_bias=task.readout_bias.detach().cpu().clone(),
            test_accuracy=[float(a) for a in test_accuracy],
        )

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "best_paths": self.best_paths,
            "readout_weight": self.readout_weight,
            "readout_bias": self.readout_bias,
            "test_accuracy": list(self.test_accuracy),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FinishedTask:
        return cls(
            name=state["name"],
            class_names=tuple(state["class_names"]),
            best_paths=state["best_paths"],
            readout_weight=state["readout_weight"],
            readout_bias=state["readout_bias"],
            test_accuracy=list(state["test_accuracy"]),
        )

    def to(self, device: Any) -> FinishedTask:
        """The same task with its readout on ``device`` (where the net runs)."""
        return FinishedTask(
            self.name,
            self.class_names,
            self.best_paths,
            self.readout_weight.to(device),
            self.readout_bias.to(device),
            self.test_accuracy,
        )

    @classmethod
    def stack(cls, tasks: list[FinishedTask]) -> FinishedTask:
        """One task over the runs of several one-run tasks (run r = tasks[r])."""
        return cls(
            name=tasks[0].name,
            class_names=tasks[0].class_names,
            best_paths=torch.cat([t.best_paths for t in tasks]),
            readout_weight=torch.cat([t.readout_weight for t in tasks]),
            readout_bias=torch.cat([t.readout_bias for t in tasks]),
            test_accuracy=[a for t in tasks for a in t.test_accuracy],
        )


# --------------------------------------------------------------------------- source jobs
def execute_source_job(
    job: JobSpec, config: ExperimentConfig, run_dir: str | Path, position: int = 0
) -> dict[str, Any]:
    """Evolve a source unit, or reuse its artifact when one with the same key exists;
    write its rows into the run for every set that uses it; return its record."""

    run_dir = Path(run_dir)
    done_path = run_dir / "jobs" / f"{job.job_id}.json"
    if done_path.exists():
        return json.loads(done_path.read_text())
    data = load_dataset(config, job.task)
    phase = source_phase(config, job, data)
    net_config = net_config_for(config, job.task, data)
    key, identity = source_key(config, job, data, phase, net_config)
    local = run_dir / "sources" / f"{key}.pt"
    shared = store_dir(config) / f"{key}.pt"
    problems: list[str] = []  # artifacts found but not trusted, one line each
    reused = "run"
    artifact = reuse_run_copy(local, key, problems)
    if artifact is None and config.protocol.reuse_sources:
        artifact = reuse_store_entry(shared, local, key, problems)
        reused = "store"
    if artifact is None:
        reused = ""
        work = run_dir / "sources" / "work" / job.job_id
        work.mkdir(parents=True, exist_ok=True)
        (run_dir / "progress").mkdir(exist_ok=True)
        state_path = run_dir / "checkpoints" / job.job_id / "state.pt"
        task = None
        if state_path.exists():
            net, task, extra = load_checkpoint(
                state_path, device=config.device, expect_net_config=net_config, expect_runs=1
            )
            if extra.get("job") != job.job_id:
                raise ValueError(f"{state_path} belongs to job {extra.get('job')!r}")
        else:
            net = PathNet(net_config, runs=1, seed=job.seed, device=config.device)
        progress = JobProgress(
            run_dir / "progress" / f"{job.job_id}.json",
            phase.generations,
            f"source {job.task} fold {job.slots[0].fold} it {job.slots[0].iteration}",
            config.logging.progress,
            position,
        )
        progress.set(task.generation if task is not None else 0)
        try:
            summary, task = run_phase(
                config, job, 0, phase, net, task, work, state_path, progress, 0, run_dir
            )
        finally:
            progress.close()
        finished = FinishedTask.of(task, phase, summary["test_accuracy"])
        artifact = {
            "format": FORMAT,
            "version": VERSION,
            "key": key,
            "identity": identity,
            "dataset": job.task,
            "net": net.state(),
            "task": finished.state(),
            "summary": summary,
            "metrics": (work / "00_source.csv").read_text(),
            "confusion": (work / "00_source_confusion.csv").read_text(),
        }
        artifact["content_sha256"] = content_digest(artifact)
        save_artifact(local, artifact)
        if config.protocol.reuse_sources:
            save_artifact(shared, artifact)
    _write_rows(config, job, run_dir, artifact)
    _write_heldout(job, run_dir, artifact, phase)
    models = _save_source_model(config, job, run_dir, artifact, data, phase)
    if reused == "store":
        outcome = "the store's entry used instead"
    elif config.protocol.reuse_sources:
        outcome = "the source was trained again and the store entry rewritten"
    else:
        outcome = "the source was trained again"
    record = {
        **job.to_dict(),
        "key": key,
        "reused": reused,  # "": trained here; "run": this run's copy; "store": shared store
        "notes": [f"{p}: not reused; {outcome}" for p in problems],
        "phases": [] if reused else [artifact["summary"]],
        "runs": 1,
        "test_accuracy": artifact["task"]["test_accuracy"][0],
        "models": models,
    }
    write_json(done_path, record)
    return record


def _save_source_model(
    config: ExperimentConfig,
    job: JobSpec,
    run_dir: Path,
    artifact: dict[str, Any],
    data: LoadedDataset,
    phase: Phase,
) -> list[str]:
    """The source path alone as a model file (staged for ``models/sources/<unit>.pt``):
    the zero-shot model, e.g. FER-2013's for new people."""

    if config.save_models == "none":
        return []
    path = staged_models(run_dir) / "sources" / f"{job.job_id}.pt"
    task = FinishedTask.from_state(artifact["task"])
    test = [] if job.slots[0].fold == 0 else sorted(set(phase.data[0].test_subjects))
    n_test = len(test)
    save_model(
        path,
        net=PathNet.from_state(artifact["net"], device="cpu"),
        task=task,
        run=0,
        class_names=list(task.class_names),
        face_settings=face_settings_for(config, job.task),
        dataset=job.task,
        metadata={
            "arm": "source",
            "job": job.job_id,
            "config": config.name,
            "iteration": job.slots[0].iteration,
            "fold": job.slots[0].fold,
            "source_key": artifact["key"],
            "final_fit": job.slots[0].fold == 0,
            "trained_on": [describe_rows(config, job.task, phase.data[0].train_subjects)],
            "test_accuracy": task.test_accuracy[0],
            "n_test_subjects": n_test,
            # listed when a person could read them (FER-2013: one "subject" per image)
            "test_subjects": test if len(test) <= 200 else [],
            **training_prior_metadata(phase.data[0], len(task.class_names)),
        },
    )
    return [str(path.relative_to(run_dir))]


def _write_heldout(job: JobSpec, run_dir: Path, artifact: dict[str, Any], phase: Phase) -> None:
    """The unit's held-out probabilities (``parts/<job>/00_source_heldout.npz``), from
    which the report calibrates its model file (calibration.py); none for a unit without
    a held-out side (fold 0: every subject trains)."""

    if job.slots[0].fold == 0:
        return
    rd = phase.data[0]
    net = PathNet.from_state(artifact["net"], device="cpu")
    task = FinishedTask.from_state(artifact["task"])
    with torch.no_grad():
        proba = net.predict_proba(rd.test_x, task, run=0).cpu().numpy()
    path = run_dir / "parts" / job.job_id / "00_source_heldout.npz"
    save_heldout(path, phase.keys, [proba], [rd.test_y], [rd.test_subjects])


def _write_rows(config: ExperimentConfig, job: JobSpec, run_dir: Path, artifact: dict) -> None:
    """The unit's metric and confusion rows, once per set that uses it (its table)."""
    parts = run_dir / "parts" / job.job_id
    parts.mkdir(parents=True, exist_ok=True)
    sets = users_of(config, job)
    for name, text in (("00_source.csv", "metrics"), ("00_source_confusion.csv", "confusion")):
        frame = pd.read_csv(io.StringIO(artifact[text]), dtype={"experiment": str})
        # A unit no set reports (the final fit's source on every subject) writes none.
        frame = (
            pd.concat([frame.assign(experiment=s) for s in sets], ignore_index=True)
            if sets
            else frame.iloc[0:0]
        )
        frame.to_csv(parts / name, index=False)


@dataclass
class LoadedSources:
    """The source units of a transfer job's runs (run r transfers from ``units[r]``)."""

    units: list[JobSpec]
    artifacts: list[dict[str, Any]]
    task: FinishedTask

    def install(self, net) -> None:
        """Fix each run's source path in ``net`` (and re-initialise the rest)."""
        net.adopt_fixed([(a["net"], 0) for a in self.artifacts], self.task.name)


def load_sources(config: ExperimentConfig, run_dir: Path, units: list[JobSpec]) -> LoadedSources:
    """The artifacts of finished source units (their jobs must have run)."""
    cache: dict[str, dict[str, Any]] = {}
    for unit in dict.fromkeys(units):
        done = run_dir / "jobs" / f"{unit.job_id}.json"
        if not done.exists():
            raise RuntimeError(
                f"source job {unit.job_id} has not finished; transfer jobs run after it"
            )
        key = json.loads(done.read_text())["key"]
        try:
            cache[unit.job_id] = load_artifact(run_dir / "sources" / f"{key}.pt", key)
        except ArtifactError as exc:
            # Forget the source job, so that the advice to re-run rebuilds its artifact
            # (from the store, or trained again) instead of failing here every time.
            done.unlink(missing_ok=True)
            raise RuntimeError(
                f"the artifact of source job {unit.job_id}: {exc}; the source job is reset: "
                "re-run the same command to rebuild it"
            ) from None
    artifacts = [cache[u.job_id] for u in units]
    task = FinishedTask.stack([FinishedTask.from_state(a["task"]) for a in artifacts])
    return LoadedSources(units=units, artifacts=artifacts, task=task)
