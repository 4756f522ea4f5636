"""One phase of a job: evolve a task (resuming when a checkpoint holds it), and around it
the per-generation work: training rows, held-out checks every ``eval_every`` generations,
checkpoints, progress; then the final held-out scores, confusions, held-out probabilities
(for calibration), the exported models and the fix. The link jobs (jobs.py) and the
source jobs (sources.py) both run their phases through it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve, save_checkpoint
from pathnet_fer.experiments.arms import arm_of
from pathnet_fer.experiments.calibration import save_heldout
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.export import save_models
from pathnet_fer.experiments.loggers import (
    ConsoleLogger,
    CSVLogger,
    LoggerGroup,
    TensorBoardLogger,
)
from pathnet_fer.experiments.metrics_log import COLUMNS
from pathnet_fer.experiments.phases import Phase
from pathnet_fer.experiments.plan import JobSpec
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
    if arm_of(phase.arm).holds_out:  # held-out probabilities, for the cross-fitted calibration
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
