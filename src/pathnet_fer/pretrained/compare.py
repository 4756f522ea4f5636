"""A run's models against the shipped one, on the same faces neither trained on.

``make demo`` ends with this table (``compare_with_shipped``): its freshly trained models
and the shipped pretrained model, scored on the same faces:

- **FER-2013's test split** (a fixed split): the run's deployed model (the first set's
  final fit) never trained on it (its source learnt the training split), nor did the
  shipped model (the same split held out).
- **Each destination's held-out fold faces** (CK+48, JAFFE): the deployed model trained on
  *every* subject of its destination, so none of them is held out from it. The run's
  column is therefore its **cross-validated transfer arm** (the deployed model's recipe,
  each fold's model on its own fold's held-out people, from the run's saved held-out
  predictions); the shipped model never saw the dataset (zero-shot).
- **CREMA-D's sample clips** (when present): neither model saw them; the run's deployed
  model and the shipped one, per frame and per clip (majority vote).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = ["faces", "n", "run_model", "run_accuracy", "shipped_accuracy",
           "run_clips", "shipped_clips"]  # fmt: skip


def _scores(model: Any, images: np.ndarray, frames: pd.DataFrame, classes) -> Any:
    from pathnet_fer.predict.evaluate import evaluate_faces

    return evaluate_faces(model, images, frames, classes)


def compare_with_shipped(
    run_dir: str | Path, config: Any, deployed: Path | None, shipped: str | Path | None = None
) -> pd.DataFrame:
    """One row per set of faces (see the module doc); ``deployed``: the run's deployed
    model file (None: rows that need it are left out)."""
    from pathnet_fer.experiments.calibration import read_heldout
    from pathnet_fer.experiments.datasets import dataset_folds, load_dataset
    from pathnet_fer.predict.evaluate import evaluate_model
    from pathnet_fer.predict.model_file import check_compatible, load_model
    from pathnet_fer.pretrained import pretrained_path

    shipped = Path(shipped) if shipped else pretrained_path()
    ship = load_model(shipped)
    rows = []
    datasets: dict[str, Any] = {}

    def faces(name: str):
        if name not in datasets:
            from pathnet_fer.experiments.datasets import face_settings_for

            check_compatible(ship.input, face_settings_for(config, name), what="shipped model")
            datasets[name] = load_dataset(config, name)
        return datasets[name]

    fixed = [n for n, s in config.datasets.items() if s.folds == "fixed" and not s.union]
    for name in fixed:
        if deployed is None or not any(name in s.links for s in config.sets):
            continue
        data = faces(name)
        test = dataset_folds(config, name, data)[0].test_index
        images, frames = data.faces.images[test], data.faces.frames.iloc[test]
        run = _scores(load_model(deployed), images, frames, data.class_names)
        ours = _scores(ship, images, frames, data.class_names)
        rows.append({"faces": f"{name}, its test split", "n": len(test),
                     "run_model": str(deployed.relative_to(run_dir)),
                     "run_accuracy": run.frame["accuracy"],
                     "shipped_accuracy": ours.frame["accuracy"]})  # fmt: skip
    heldout = [s for s in read_heldout(run_dir) if s["arm"] == "transfer"]
    for s in config.sets:
        sets = [h for h in heldout if h["experiment"] == s.name and h["task"] == s.destination]
        if not sets:
            continue
        data = faces(s.destination)
        folds = dataset_folds(config, s.destination, data)
        correct, n = 0, 0
        index = []
        for h in sets:
            test = folds[int(h["fold"]) - 1].test_index
            if len(test) != len(h["label"]) or not np.array_equal(data.y[test], h["label"]):
                raise ValueError(f"{run_dir}: held-out faces of {s.name} fold {h['fold']} "
                                 "are not the dataset's fold now")  # fmt: skip
            correct += int((h["proba"].argmax(1) == h["label"]).sum())
            n += len(test)
            index.append(test)
        index = np.concatenate(index)
        ours = _scores(ship, data.faces.images[index], data.faces.frames.iloc[index],
                         data.class_names)  # fmt: skip
        folds_used = sorted({int(h["fold"]) for h in sets})
        rows.append({"faces": f"{s.destination}, held-out people of folds {folds_used}",
                     "n": n, "run_model": f"{s.name} transfer arm, each fold's model",
                     "run_accuracy": correct / n,
                     "shipped_accuracy": ours.frame["accuracy"]})  # fmt: skip
    clips = config.resolved_data_root() / "crema-d-sample"
    if deployed is not None and clips.is_dir():
        run = evaluate_model(deployed, "crema-d-sample", root=clips)
        ours = evaluate_model(shipped, "crema-d-sample", root=clips)
        rows.append({"faces": "crema-d-sample, six-class clips (frames)", "n": len(ours.frames),
                     "run_model": str(deployed.relative_to(run_dir)),
                     "run_accuracy": run.frame["accuracy"],
                     "shipped_accuracy": ours.frame["accuracy"],
                     "run_clips": f"{int(run.clips['majority_correct'].sum())}/{len(run.clips)}",
                     "shipped_clips": f"{int(ours.clips['majority_correct'].sum())}/"
                                      f"{len(ours.clips)}"})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def comparison_markdown(table: pd.DataFrame, shipped: str | Path) -> str:
    """The report's section for ``compare_with_shipped``'s table."""
    lines = [
        "## This run's models against the shipped pretrained model",
        "",
        f"The shipped model (`{Path(shipped).name}`, docs/model-card.md: a FER-2013 source "
        "path alone, never trained on CK+48, JAFFE or CREMA-D) and this run's models on the "
        "same faces. FER-2013's test split and the CREMA-D clips: neither model trained on "
        "them; the run's model is its deployed final fit. CK+48 and JAFFE: the deployed "
        "model trained on every subject, so none is held out from it; the run's column is "
        "its cross-validated transfer arm (the deployed model's recipe, each fold's model "
        "on its own held-out people), the shipped model's is zero-shot on the same faces. "
        "Frame accuracy; clips by majority vote.",
        "",
        "| faces | n | this run's model | this run | shipped |",
        "|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        run, ours = f"{r.run_accuracy:.3f}", f"{r.shipped_accuracy:.3f}"
        if isinstance(r.run_clips, str):
            run, ours = f"{run} ({r.run_clips} clips)", f"{ours} ({r.shipped_clips} clips)"
        lines.append(f"| {r.faces} | {r.n} | {r.run_model} | {run} | {ours} |")
    return "\n".join(lines) + "\n"
