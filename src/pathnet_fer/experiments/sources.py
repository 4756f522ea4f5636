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

After a chain, :func:`after_chain_rows` measures what the later links did to the earlier
ones (``forgetting``: held-out accuracy at the link's end minus after the chain; frozen
paths make it exactly 0) and the source applied with no destination training
(``zero-shot``: classes mapped by emotion name).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import pathnet_fer
from pathnet_fer.datasets.loading import LoadedDataset, face_settings_for, load_dataset
from pathnet_fer.evolution import EvolutionConfig, load_checkpoint
from pathnet_fer.experiments.calibration import save_heldout
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.datasets import data_fingerprint, net_config_for
from pathnet_fer.experiments.loggers import CSVLogger, RunKey
from pathnet_fer.experiments.phase_runner import run_phase, write_json
from pathnet_fer.experiments.phases import Phase, describe_rows, source_phase, source_rows
from pathnet_fer.experiments.plan import JobSpec, users_of
from pathnet_fer.experiments.progress import JobProgress
from pathnet_fer.formats.model_file import save_model
from pathnet_fer.pathnet import PathNet
from pathnet_fer.paths import cache_root
from pathnet_fer.safe_load import load_plain
from pathnet_fer.scoring.metrics import evaluate_proba

FORMAT = "pathnet-fer-source"
VERSION = 2
"""v2: an artifact carries ``content_sha256``. The version is part of every key, so v1
entries of a store are never looked up again (they may be deleted)."""


class ArtifactError(ValueError):
    """A source artifact that cannot be trusted: unreadable, of another key, or edited."""


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


# --------------------------------------------------------------------------- identity
def source_key(
    config: ExperimentConfig, job: JobSpec, data: LoadedDataset, phase: Phase, net_config: Any
) -> tuple[str, dict[str, Any]]:
    """The artifact key of a source unit and the identity it hashes."""

    rd = phase.data[0]
    device = "cuda" if str(config.device).startswith("cuda") else str(config.device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    identity = {
        "format": [FORMAT, VERSION, pathnet_fer.__version__],
        "data": data_fingerprint(data),
        "train_rows": hashlib.blake2b(rd.train_index.astype(np.int64).tobytes()).hexdigest(),
        "test_rows": hashlib.blake2b(rd.test_index.astype(np.int64).tobytes()).hexdigest(),
        "pathnet": net_config.to_dict(),
        "evolution": EvolutionConfig.from_dict(
            {**config.evolution, "generations": phase.generations}
        ).to_dict(),
        "seed": [job.seed, phase.seed],
        "device": device,
        "evaluation": [config.protocol.eval_every, config.protocol.clip_vote],
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24], identity


def store_dir(config: ExperimentConfig) -> Path:
    """The shared store of source artifacts (beside the face-crop cache)."""
    base = Path(config.cache_dir).expanduser() if config.cache_dir else cache_root()
    return base / "sources"


def _save(path: Path, artifact: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(artifact, tmp)
    os.replace(tmp, path)


def content_digest(artifact: dict[str, Any]) -> str:
    """sha256 over everything an artifact holds but its digest: names, plain values and
    tensor bytes, in a fixed order (independent of how torch laid the file out)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in artifact.items() if k != "content_sha256"})
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, dict):
        h.update(f"dict{len(value)}:".encode())
        for k in sorted(value, key=str):
            _feed(h, str(k))
            _feed(h, value[k])
    elif isinstance(value, list | tuple):
        h.update(f"list{len(value)}:".encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"tensor{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    else:  # str, int, float, bool, None (all an artifact holds besides the above)
        text = repr(value).encode()
        h.update(f"{type(value).__name__}{len(text)}:".encode())
        h.update(text)


def load_artifact(path: Path, key: str | None = None) -> dict[str, Any]:
    """Read a source artifact and verify it is the one ``key`` (default: the file's
    name) names; ``ArtifactError`` in one line naming the file otherwise."""
    path = Path(path)
    key = path.stem if key is None else key
    if not path.is_file():
        raise ArtifactError(f"{path} is missing")
    try:
        artifact = load_plain(path, "pathnet-fer source artifact")
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        reason = (str(exc).splitlines() or [""])[0].split(". ")[0][:160]
        raise ArtifactError(
            f"{path} is damaged (unreadable: {type(exc).__name__}: {reason})"
        ) from None
    if not isinstance(artifact, dict) or artifact.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a pathnet-fer source artifact")
    if artifact.get("version") != VERSION:
        raise ArtifactError(
            f"{path} has artifact version {str(artifact.get('version'))[:20]}; this code "
            f"reads {VERSION}"
        )
    if artifact.get("key") != key:
        raise ArtifactError(
            f"{path} holds the artifact of key {str(artifact.get('key'))[:40]}, not {key} "
            "(copied or moved over it)"
        )
    if artifact.get("content_sha256") != content_digest(artifact):
        raise ArtifactError(
            f"{path} does not match its content checksum (edited or damaged after it was written)"
        )
    return artifact


def _reuse_run_copy(local: Path, key: str, problems: list[str]) -> dict[str, Any] | None:
    """This run's verified copy of the artifact, or None (a damaged one noted)."""
    if not local.exists():
        return None
    try:
        return load_artifact(local, key)
    except ArtifactError as exc:
        problems.append(f"this run's copy {exc}")
        return None


def _reuse_store_entry(
    shared: Path, local: Path, key: str, problems: list[str]
) -> dict[str, Any] | None:
    """The store's verified artifact, copied into the run (the copy is what is verified,
    so the run holds exactly what was checked), or None (a damaged entry noted)."""
    if not shared.exists():
        return None
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f"{local.name}.{os.getpid()}.copy")
    try:
        shutil.copyfile(shared, tmp)
        artifact = load_artifact(tmp, key)
    except (ArtifactError, OSError) as exc:
        reason = (
            str(exc).removeprefix(str(tmp))
            if isinstance(exc, ArtifactError)
            else f" could not be copied into the run ({exc.strerror or exc})"
        )
        problems.append(f"source store entry {shared}{reason}")
        tmp.unlink(missing_ok=True)
        return None
    os.replace(tmp, local)
    return artifact


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
    artifact = _reuse_run_copy(local, key, problems)
    if artifact is None and config.protocol.reuse_sources:
        artifact = _reuse_store_entry(shared, local, key, problems)
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
        _save(local, artifact)
        if config.protocol.reuse_sources:
            _save(shared, artifact)
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
    """The source path alone as a model file (``models/sources/<unit>.pt``): the
    zero-shot model, e.g. FER-2013's for new people."""

    if config.save_models == "none":
        return []
    path = run_dir / "models" / "sources" / f"{job.job_id}.pt"
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


# --------------------------------------------------------------------------- after a chain
def mapped_proba(proba: np.ndarray, source: tuple[str, ...], dest: tuple[str, ...]) -> np.ndarray:
    """Source-class probabilities as destination-class ones, matched by emotion name and
    renormalised over the shared classes; a destination class the source lacks gets 0
    (it is never predicted, so its samples count as wrong)."""
    index = {name: i for i, name in enumerate(source)}
    out = np.zeros((proba.shape[0], len(dest)), dtype=np.float64)
    for j, name in enumerate(dest):
        if name in index:
            out[:, j] = proba[:, index[name]]
    total = out.sum(1, keepdims=True)
    if not np.all(total > 0):
        raise ValueError(f"source classes {source} share no emotion with {dest}")
    return out / total


def after_chain_rows(
    config: ExperimentConfig,
    net,
    source: LoadedSources,
    finished: list[FinishedTask],
    phases: list[Phase],
    datasets: dict[str, LoadedDataset],
    log: CSVLogger,
) -> None:
    """Rows (to ``log``) measured once the whole chain is done: ``forgetting`` of every earlier link
    (in that link's own row: ``source`` for link 1, ``transfer`` for later ones, keyed
    by the transfer run), and arm ``zero-shot``: the source path and readout alone on
    each later link's held-out faces."""
    vote = config.protocol.clip_vote

    src = source.task.to(net.device)
    unit_rows = {u.job_id: source_rows(config, u, datasets[u.task]) for u in source.units}
    judged: list[tuple[FinishedTask, list[RunKey], list[Any]]] = [
        (
            src,
            [RunKey(k.experiment, k.iteration, k.fold, u.task, "source")
             for k, u in zip(phases[0].keys, source.units, strict=True)],
            [unit_rows[u.job_id] for u in source.units],
        )
    ]  # fmt: skip
    fixed_phases = [ph for ph in phases if ph.fix_after]
    for f, ph in zip(finished, fixed_phases, strict=True):
        judged.append((f.to(net.device), ph.keys, ph.data))
    generation = phases[-1].generations
    for f, keys, data in judged:
        for r, (key, rd) in enumerate(zip(keys, data, strict=True)):
            proba = net.predict_proba(rd.test_x, f, run=r).cpu().numpy()
            acc = float(np.mean(proba.argmax(1) == rd.test_y))
            log.log_values(
                key, generation, "test", "frame", {"forgetting": f.test_accuracy[r] - acc}
            )
    zero_shot = phases if config.protocol.iteration_mode == "repeat" else phases[:1]
    for ph in zero_shot:
        for r, (key, rd) in enumerate(zip(ph.keys, ph.data, strict=True)):
            proba = net.predict_proba(rd.test_x, src, run=r).cpu().numpy()
            mapped = mapped_proba(proba, src.class_names, ph.class_names)
            ev = evaluate_proba(mapped, rd.test_y, rd.test_clips, ph.n_classes, vote)
            k = RunKey(key.experiment, key.iteration, key.fold, key.task, "zero-shot")
            for level, values in ev.by_level().items():
                log.log_values(k, 0, "test", level, values)
    log.flush()
