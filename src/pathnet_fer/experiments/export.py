"""Export a phase's best path as a prediction model file (format owned by ``predict``),
and a chain's every link as one heads model (``pathnet/heads_model.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pathnet_fer.datasets.loading import face_settings_for
from pathnet_fer.experiments.arms import arm_of
from pathnet_fer.experiments.phases import Phase, describe_rows
from pathnet_fer.experiments.run_dir import deployed_path, staged_models
from pathnet_fer.formats.class_prior import HEAD_PRIORS, class_frequencies
from pathnet_fer.formats.loaded_model import MIRROR_KEY, ModelFileError
from pathnet_fer.formats.model_file import load_model, save_model, save_path_model
from pathnet_fer.names import slug
from pathnet_fer.pathnet.heads_model import HeadsModel


def save_models(config, job, phase: Phase, net, task, run_dir: Path) -> list[str]:
    """Save the best path(s) of a finished phase (``save_models``: best | all); return
    their paths relative to the run directory."""

    fitness = task.best_fitness.cpu().numpy()
    out = []
    for r in saved_runs(config, task, phase):
        key = phase.keys[r]
        path = model_path(config, phase, r, run_dir)
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
                **_common_metadata(config, job, phase, r, float(fitness[r])),
                **training_prior_metadata(phase.data[r], phase.n_classes),
            },
        )
        out.append(str(path.relative_to(run_dir)))
    return out


def training_prior_metadata(rd: Any, n_classes: int) -> dict[str, Any]:
    """``{"inference": {"class_prior": ...}}``: the class frequencies of a run's training
    faces (what ``--prior uniform`` divides out, formats/class_prior.py); empty when a
    class has no training face."""
    freq = class_frequencies(rd.y, n_classes, rd.targets)
    return {} if freq is None else {MIRROR_KEY: {"class_prior": freq}}


def saved_runs(config, task, phase: Phase) -> list[int]:
    """The runs of a phase whose models are saved (``save_models``: best | all)."""
    if config.save_models == "all":
        return list(range(len(phase.keys)))
    return [int(task.best_fitness.cpu().numpy().argmax())]


def model_path(config, phase: Phase, r: int, run_dir: Path, suffix: str = "") -> Path:
    """``<set>/<name><suffix>.pt`` of run ``r`` of a phase, staged for ``models/``."""
    key = phase.keys[r]
    name = (
        "final"
        if not arm_of(phase.arm).holds_out
        else f"{phase.arm}_it{key.iteration}_fold{key.fold}"
        if config.save_models == "all"
        else f"{phase.arm}_best"
        if phase.label == phase.arm
        else f"{phase.label}_best"
    )
    return staged_models(run_dir) / slug(key.experiment) / f"{name}{suffix}.pt"


def _common_metadata(config, job, phase: Phase, r: int, fitness: float) -> dict[str, Any]:
    return {
        "selection": "highest training-selection accuracy of the "
        "final population's best path (no test data)",
        "train_selection_accuracy": fitness,
        "job": job.job_id,
        "config": config.name,
        "final_fit": not arm_of(phase.arm).holds_out,
        # What the model saw: every link (fold models: the fold's training side).
        "trained_on": phase.extra.get("trained_on", {}).get(r)
        or [describe_rows(config, phase.task, phase.data[r].train_subjects)],
        "test_subjects": sorted(set(phase.data[r].test_subjects))
        if arm_of(phase.arm).holds_out
        else [],
    }


def save_heads_models(
    config, job, phases: list[Phase], net, task, source, finished: list, run_dir: Path
) -> list[str]:
    """After a chain's last link: one heads model per saved run, ``<name>_heads.pt`` beside
    the last link's file, holding the source's path and readout, every fixed link's and
    the last one's (each a standalone path model, cut from the same net: the earlier links
    bit for bit as they were fixed). Temperatures are 1 here; the report's calibration sets
    each head's from held-out predictions (experiments/calibration.py). Each head's
    training faces' class frequencies are recorded (``--prior uniform``) when every link
    has them."""

    last = phases[-1]
    fixed = [ph for ph in phases if ph.fix_after]
    if config.protocol.iteration_mode != "repeat":
        return []  # chained iterations repeat one link: no chain of distinct heads
    if len(fixed) != len(finished):
        raise RuntimeError(
            f"job {job.job_id}: {len(finished)} finished links recorded for {len(fixed)} "
            "fixed phases; its checkpoint is inconsistent: delete "
            f"checkpoints/{job.job_id}/ to redo the job"
        )
    out = []
    for r in saved_runs(config, task, last):
        key = last.keys[r]
        links = [(source.units[r].task, source.task, "source", source.task.class_names)]
        links += [
            (ph.task, f, ph.arm, ph.class_names) for ph, f in zip(fixed, finished, strict=True)
        ]
        links += [(last.task, task, last.arm, last.class_names)]
        names: list[str] = []
        for dataset, *_ in links:
            names.append(dataset if dataset not in names else f"{dataset}#{len(names) + 1}")
        trained_on = _common_metadata(config, job, last, r, 0.0)["trained_on"]
        held = _held_out(config, source.units[r], fixed, r, last)
        heads = HeadsModel(
            [net.path_model(t, run=r) for _, t, _, _ in links],
            names,
            [list(classes) for *_, classes in links],
            descriptions=[
                {"link": j + 1, "dataset": d, "arm": arm, "trained_on": trained_on[: j + 1]} | h
                for j, ((d, _, arm, _), h) in enumerate(zip(links, held, strict=True))
            ],
        )
        # the combination held out each link's fold subjects of that link's dataset
        by_dataset = {d: h["test_subjects"] for (d, *_), h in zip(links, held, strict=True)
                      if h.get("test_subjects")}  # fmt: skip
        priors = [_source_prior(run_dir, source.units[r])]
        priors += [training_prior_metadata(ph.data[r], ph.n_classes) for ph in [*fixed, last]]
        priors = [p.get(MIRROR_KEY, {}).get("class_prior") for p in priors]
        inference: dict[str, Any] = {
            "head_priors_missing": [n for n, p in zip(names, priors, strict=True) if p is None]
        }  # said in the file: --prior uniform then refuses it
        if all(p is not None for p in priors):
            inference = {MIRROR_KEY: {HEAD_PRIORS: dict(zip(names, priors, strict=True))}}
        path = model_path(config, last, r, run_dir, suffix="_heads")
        save_path_model(
            path,
            heads,
            class_names=heads.class_names,
            face_settings=face_settings_for(config, last.task),
            dataset=last.task,
            metadata={
                "experiment": key.experiment,
                "arm": key.arm,
                "iteration": key.iteration,
                "fold": key.fold,
                "heads": names,
                "combination": "mean of the calibrated heads over the union of their "
                "emotions (pathnet/heads_model.py)",
                **_common_metadata(config, job, last, r, float(task.best_fitness[r])),
                "test_subjects_by_dataset": by_dataset,
                **inference,
            },
        )
        out.append(str(path.relative_to(run_dir)))
    return out


def _source_prior(run_dir: Path, unit) -> dict[str, Any]:
    """The source unit's recorded training prior, read from its model file (staged by
    the source job, or already deployed under ``models/``): ``{}`` when there is none
    (``save_models: none``, or a file written before priors were recorded)."""
    staged = staged_models(run_dir) / "sources" / f"{unit.job_id}.pt"
    for path in (staged, deployed_path(run_dir, staged)):
        if path.exists():
            try:
                prior = load_model(path).class_prior
            except ModelFileError:
                return {}  # the source job's own checks name a damaged file
            return {} if prior is None else {MIRROR_KEY: {"class_prior": list(prior)}}
    return {}


def _held_out(config, unit, fixed: list[Phase], r: int, last: Phase) -> list[dict[str, Any]]:
    """What each head never trained on, for ``evaluate``'s held-out notes: the source on
    a fixed split holds out its test split; a link holds out its fold's test subjects
    (none in a final fit, which trains on every subject)."""
    spec = config.datasets[unit.task]
    fold = unit.slots[0].fold
    # a subject-fold source's held-out subjects are not at hand here: not recorded (None)
    source = {"final_fit": fold == 0 and spec.folds != "fixed", "test_subjects": None}
    if spec.folds == "fixed":
        source["held_out_splits"] = [s for s in spec.splits if s != "train"] or ["test"]
    out = [source]
    for ph in [*fixed, last]:
        final = not arm_of(ph.arm).holds_out
        test = [] if final else sorted(set(ph.data[r].test_subjects))
        out.append({"final_fit": final, "test_subjects": test})
    return out
