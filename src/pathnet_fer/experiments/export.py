"""Export a phase's best path as a prediction model file (format owned by ``predict``)."""

from __future__ import annotations

from pathlib import Path

from pathnet_fer.experiments.datasets import face_settings_for
from pathnet_fer.experiments.names import slug
from pathnet_fer.experiments.phases import Phase, describe_rows


def save_models(config, job, phase: Phase, net, task, run_dir: Path) -> list[str]:
    """Save the best path(s) of a finished phase (``save_models``: best | all); return
    their paths relative to the run directory."""
    from pathnet_fer.predict.model_file import save_model

    fitness = task.best_fitness.cpu().numpy()
    runs = range(len(phase.keys)) if config.save_models == "all" else [int(fitness.argmax())]
    out = []
    for r in runs:
        key = phase.keys[r]
        name = (
            "final.pt"
            if phase.arm == "final"
            else f"{phase.arm}_it{key.iteration}_fold{key.fold}.pt"
            if config.save_models == "all"
            else f"{phase.arm}_best.pt"
            if phase.label == phase.arm
            else f"{phase.label}_best.pt"
        )
        path = run_dir / "models" / slug(key.experiment) / name
        save_model(
            path,
            net=net,
            task=task,
            run=r,
            class_names=list(phase.class_names),
            face_settings=face_settings_for(config, phase.task),
            dataset=phase.task,
            metadata={
                "experiment": key.experiment,
                "arm": key.arm,
                "iteration": key.iteration,
                "fold": key.fold,
                "selection": "highest training-selection accuracy of the "
                "final population's best path (no test data)",
                "train_selection_accuracy": float(fitness[r]),
                "job": job.job_id,
                "config": config.name,
                "final_fit": phase.arm == "final",
                # What the model saw: every link (fold models: the fold's training side).
                "trained_on": phase.extra.get("trained_on", {}).get(r)
                or [describe_rows(config, phase.task, phase.data[r].train_subjects)],
                "test_subjects": []
                if phase.arm == "final"
                else sorted(set(phase.data[r].test_subjects)),
            },
        )
        out.append(str(path.relative_to(run_dir)))
    return out
