"""Running one link job (transfer, final, scratch): its phases through ``run_phase``,
checkpoints between them, the chain's heads model and after-chain rows.

A job is a pure function of (config, job, run directory) (``execute.execute_job`` routes
to it), and it resumes from its own checkpoint. It writes only under the run
directory: ``parts/<job>/`` metrics and confusions, ``checkpoints/<job>/state.pt``,
``models/``, ``progress/<job>.json`` and finally ``jobs/<job>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.evolution import load_checkpoint, save_checkpoint
from pathnet_fer.experiments import sources
from pathnet_fer.experiments.after_chain import after_chain_rows
from pathnet_fer.experiments.arms import arm_of
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.datasets import net_config_for
from pathnet_fer.experiments.export import save_heads_models
from pathnet_fer.experiments.loggers import (
    CSVLogger,
)
from pathnet_fer.experiments.phase_runner import run_phase, write_json
from pathnet_fer.experiments.phases import build_phases, run_slots
from pathnet_fer.experiments.plan import JobSpec, set_named, source_job
from pathnet_fer.experiments.progress import JobProgress
from pathnet_fer.pathnet import PathNet


def execute_link_job(
    job: JobSpec, config: ExperimentConfig, run_dir: Path, position: int
) -> dict[str, Any]:
    """Run (or resume) a transfer, final or scratch job (not cut); return its record."""
    done_path = run_dir / "jobs" / f"{job.job_id}.json"
    if done_path.exists():
        return json.loads(done_path.read_text())
    arm = arm_of(job.arm)
    # The final fit has no held-out data: its rows stay out of metrics.csv (final/).
    parts = run_dir / arm.output_dir / job.job_id
    parts.mkdir(parents=True, exist_ok=True)
    (run_dir / "progress").mkdir(exist_ok=True)
    state_path = run_dir / "checkpoints" / job.job_id / "state.pt"
    s = set_named(config, job.experiment)
    names = s.links if arm.from_source else [job.task]
    datasets = {n: load_dataset(config, n) for n in dict.fromkeys(names)}
    phases = build_phases(config, job, datasets)
    runs = len(phases[0].keys)
    net_config = net_config_for(config, names[-1], datasets[names[-1]])  # one size per chain
    source = None
    if arm.from_source:
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
    if source is not None and arm.chains_folds:
        after = parts / "99_after_chain.csv"
        after.unlink(missing_ok=True)  # redone whole if a kill came after it was written
        log = CSVLogger(after)
        after_chain_rows(config, net, source, finished, phases, datasets, log)
        log.close()
    write_json(done_path, record)
    return record
