"""Running one job: its phases through ``evolve``, metrics, checkpoints, exported models.

A job is a pure function of (config, job, run directory): any executor (local processes,
Dask) can run it, and it resumes from its own checkpoint. It writes only under the run
directory: ``parts/<job>/`` metrics and confusions, ``checkpoints/<job>/state.pt``,
``models/``, ``progress/<job>.json`` and finally ``jobs/<job>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathnet_fer.experiments.calibration import save_heldout
from pathnet_fer.experiments.config import ExperimentConfig, build_config
from pathnet_fer.experiments.datasets import load_dataset, net_config_for
from pathnet_fer.experiments.export import save_heads_models, save_models
from pathnet_fer.experiments.loggers import (
    ConsoleLogger,
    CSVLogger,
    LoggerGroup,
    TensorBoardLogger,
)
from pathnet_fer.experiments.metrics_log import COLUMNS
from pathnet_fer.experiments.phases import Phase, build_phases, run_slots
from pathnet_fer.experiments.plan import JobSpec, set_named, source_job
from pathnet_fer.experiments.progress import JobProgress
from pathnet_fer.scoring.metrics import Evaluation, evaluate_proba


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Atomically (temp file, then rename): a reader never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def truncate_part(path: Path, generation: int, final_generation: int) -> None:
    """Drop rows written after the checkpoint a phase resumes from (they are redone)."""
    if not path.exists():
        return
    frame = pd.read_csv(path, dtype={"experiment": str, "task": str, "arm": str})
    gen = frame["generation"]
    per_generation = (frame["split"] == "train") & frame["metric"].isin(["accuracy", "loss"])
    # The final evaluation (test rows, train_seconds, parameters at the last generation)
    # is redone after a resume; periodic checks before the checkpoint are kept.
    keep = (gen < generation) | (
        (gen == generation) & (per_generation | (generation < final_generation))
    )
    frame[keep].to_csv(path, index=False, columns=list(COLUMNS))


def evaluate_phase(net, task, phase: Phase, paths, vote: str) -> list[Evaluation]:
    """Held-out scores of each run's path (``paths``) with the task's readout."""
    out = []
    for r, rd in enumerate(phase.data):
        proba = net.predict_proba(rd.test_x, task, run=r, path=paths[r]).cpu().numpy()
        out.append(evaluate_proba(proba, rd.test_y, rd.test_clips, phase.n_classes, vote))
    return out


def execute_job(
    job: JobSpec, config_dict: dict[str, Any], run_dir: str | Path, position: int = 0
) -> dict[str, Any]:
    """Run (or resume) one job; return its record (``jobs/<job>.json``)."""
    config = build_config(config_dict)
    if job.arm == "source":
        from pathnet_fer.experiments.sources import execute_source_job

        return execute_source_job(job, config, run_dir, position)
    if config.executor.cut is not None:
        from pathnet_fer.experiments.cuts import execute_cut_job

        return execute_cut_job(job, config, config_dict, run_dir, position)
    return _execute_link_job(job, config, Path(run_dir), position)


def _execute_link_job(
    job: JobSpec, config: ExperimentConfig, run_dir: Path, position: int
) -> dict[str, Any]:
    from pathnet_fer.evolution import load_checkpoint, save_checkpoint
    from pathnet_fer.experiments import sources
    from pathnet_fer.pathnet import PathNet

    done_path = run_dir / "jobs" / f"{job.job_id}.json"
    if done_path.exists():
        return json.loads(done_path.read_text())
    # The final fit has no held-out data: its rows stay out of metrics.csv (final/).
    parts = run_dir / ("final" if job.arm == "final" else "parts") / job.job_id
    parts.mkdir(parents=True, exist_ok=True)
    (run_dir / "progress").mkdir(exist_ok=True)
    state_path = run_dir / "checkpoints" / job.job_id / "state.pt"
    s = set_named(config, job.experiment)
    transfer = job.arm in ("transfer", "final")
    names = s.links if transfer else [job.task]
    datasets = {n: load_dataset(config, n) for n in dict.fromkeys(names)}
    phases = build_phases(config, job, datasets)
    runs = len(phases[0].keys)
    net_config = net_config_for(config, names[-1], datasets[names[-1]])  # one size per chain
    source = None
    if transfer:
        units = [source_job(config, s, sl) for sl in run_slots(config, job)]
        source = sources.load_sources(config, run_dir, units)
    start_phase, resume_task, finished = 0, None, []
    if state_path.exists():
        net, resume_task, extra = load_checkpoint(
            state_path, device=config.device, expect_net_config=net_config, expect_runs=runs
        )
        if extra.get("job") != job.job_id:
            raise ValueError(
                f"{state_path} belongs to job {extra.get('job')!r}, not {job.job_id!r}"
            )
        start_phase = int(extra["phase"])
        finished = [sources.FinishedTask.from_state(f) for f in extra.get("finished", [])]
    else:
        net = PathNet(net_config, runs=runs, seed=job.seed, device=config.device)
        if source is not None:
            source.install(net)
    total = sum(ph.generations for ph in phases)
    progress = JobProgress(
        run_dir / "progress" / f"{job.job_id}.json",
        total,
        f"{job.experiment} {job.arm} ({runs} runs)",
        config.logging.progress,
        position,
    )
    progress.set(
        sum(ph.generations for ph in phases[:start_phase])
        + (resume_task.generation if resume_task is not None else 0)
    )
    record: dict[str, Any] = {**job.to_dict(), "phases": [], "runs": runs}
    try:
        for i, phase in enumerate(phases):
            if i < start_phase:
                continue
            task = resume_task if i == start_phase else None
            if task is not None and task.name != phase.label:
                raise ValueError(
                    f"{state_path}: checkpoint holds task {task.name!r}, "
                    f"expected {phase.label!r}; delete it to restart this job"
                )
            offset = sum(ph.generations for ph in phases[:i])
            summary, task = run_phase(
                config, job, i, phase, net, task, parts, state_path, progress, offset, run_dir,
                finished=[f.state() for f in finished],
            )  # fmt: skip
            if source is not None and phase.save_models and i == len(phases) - 1:
                summary["models"] += save_heads_models(
                    config, job, phases, net, task, source, finished, run_dir
                )
            record["phases"].append(summary)
            if phase.fix_after:
                finished.append(sources.FinishedTask.of(task, phase, summary["test_accuracy"]))
            extra = {"job": job.job_id, "phase": i + 1, "finished": [f.state() for f in finished]}
            save_checkpoint(state_path, net, None, extra)
    finally:
        progress.close()
    if source is not None and job.arm == "transfer":
        after = parts / "99_after_chain.csv"
        after.unlink(missing_ok=True)  # redone whole if a kill came after it was written
        log = CSVLogger(after)
        sources.after_chain_rows(config, net, source, finished, phases, datasets, log)
        log.close()
    write_json(done_path, record)
    return record


def run_phase(
    config: ExperimentConfig,
    job: JobSpec,
    index: int,
    phase: Phase,
    net,
    task,
    parts: Path,
    state_path: Path,
    progress: JobProgress,
    offset: int,
    run_dir: Path,
    finished: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Evolve one phase (resuming ``task`` when given), log its metrics and confusions,
    export its models, fix it when the plan says so; return its summary and the task."""
    from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve, save_checkpoint

    part = parts / f"{index:02d}_{phase.label}.csv"
    G = phase.generations
    if task is not None:
        truncate_part(part, task.generation, G)
    elif part.exists():
        part.unlink()
    loggers: list = [CSVLogger(part)]
    if config.logging.console_every > 0:
        loggers.append(ConsoleLogger(config.logging.console_every))
    if config.logging.tensorboard:
        loggers.append(TensorBoardLogger(run_dir / "tensorboard"))
    log = LoggerGroup(loggers)
    K = config.protocol.eval_every
    vote = config.protocol.clip_vote
    # the earlier links' tasks travel in every checkpoint: a job resumed inside link 3 still
    # knows link 2 (its heads model and after-chain rows need it)
    extra = {"job": job.job_id, "phase": index, "finished": list(finished or [])}
    every = config.executor.checkpoint_every
    rows = np.arange(len(phase.keys))

    def on_generation(event) -> None:
        g = event.generation
        acc = event.train_accuracy[rows, event.winner].tolist()
        loss = event.loss[rows, event.winner].tolist()
        for r, key in enumerate(phase.keys):
            log.log_values(key, g, "train", "minibatch", {"accuracy": acc[r], "loss": loss[r]})
        if g % K == 0 and g < G:
            paths = event.task.current_best_paths()
            evaluations = evaluate_phase(event.net, event.task, phase, paths, vote)
            for key, ev in zip(phase.keys, evaluations, strict=True):
                for level, values in ev.by_level().items():
                    log.log_values(key, g, "test", level, values)
        if g % every == 0 or g == G:
            log.flush()  # metrics first: a checkpoint never runs ahead of its rows
            save_checkpoint(state_path, event.net, event.task, extra)
        progress.set(offset + g)

    evo = EvolutionConfig.from_dict({**config.evolution, "generations": G})
    data = [TaskData(rd.x, rd.y, name=phase.task, targets=rd.targets) for rd in phase.data]
    task = evolve(
        net,
        data,
        phase.n_classes,
        config=evo,
        seed=phase.seed,
        callbacks=[on_generation],
        name=phase.label,
        task=task,
    )
    evaluations = evaluate_phase(net, task, phase, task.best_paths, vote)
    confusion_rows = []
    seconds = task.elapsed_seconds / len(phase.keys)
    for r, (key, ev) in enumerate(zip(phase.keys, evaluations, strict=True)):
        for level, values in ev.by_level().items():
            log.log_values(key, task.generation, "test", level, values)
        params = sum(p.numel() for p in net.path_model(task, run=r).parameters())
        log.log_values(
            key,
            task.generation,
            "train",
            "minibatch",
            {"train_seconds": seconds, "parameters": float(params)},
        )
        for level, matrix in (("frame", ev.frame_confusion), ("clip", ev.clip_confusion)):
            for t, p in zip(*np.nonzero(matrix >= 0), strict=True):
                confusion_rows.append(
                    dict(
                        experiment=key.experiment,
                        arm=key.arm,
                        task=key.task,
                        iteration=key.iteration,
                        fold=key.fold,
                        level=level,
                        true=phase.class_names[t],
                        pred=phase.class_names[p],
                        count=int(matrix[t, p]),
                    )
                )
    log.close()
    pd.DataFrame(confusion_rows).to_csv(
        parts / f"{index:02d}_{phase.label}_confusion.csv", index=False
    )
    if phase.arm != "final":  # held-out probabilities, for the cross-fitted calibration
        save_heldout(
            parts / f"{index:02d}_{phase.label}_heldout.npz",
            phase.keys,
            [ev.proba for ev in evaluations],
            [rd.test_y for rd in phase.data],
            [rd.test_subjects for rd in phase.data],
        )
    models = save_models(config, job, phase, net, task, run_dir) if phase.save_models else []
    if phase.fix_after:
        net.fix(task)
    summary = {
        "phase": phase.label,
        "arm": phase.arm,
        "task": phase.task,
        "generations": task.generation,
        "seconds": task.elapsed_seconds,
        "best_fitness": [float(v) for v in task.best_fitness],
        "test_accuracy": [ev.frame["accuracy"] for ev in evaluations],
        "models": models,
    }
    return summary, task
