"""Temperature scaling, fit only on faces the model being scored never trained on.

Evolved paths reach 100 % training accuracy, so their soft-max is far more confident than
they are right on new people (in ``make demo``, mean max-probability 0.80 against
accuracy 0.42 on JAFFE's held-out subjects, 0.90 against 0.84 on CK+48's). One scalar ``T`` (probabilities ``softmax(log p / T)``)
fixes most of that without moving any arg-max, so accuracy and votes are unchanged.

Honesty: a fold's figures use a ``T`` fit on the *other* folds' held-out predictions
(cross-fitting), never its own. The deployed final model, trained on every subject, gets
the ``T`` fit on all folds' held-out predictions of the transfer arm with the same budget,
written into its model file (``metadata.calibration``) and applied by ``predict``. A
source model file (``models/sources/``) gets the ``T`` fit on the held-out predictions of
every source unit of its dataset in the run: for a fixed split (FER-2013) that is its own
test split, which the ``T`` then has seen (its accuracy there is unchanged: ``T`` never
moves an arg-max; its confidence there is in-sample).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from pathnet_fer.experiments.arms import CALIBRATES_FINAL, SOURCE, is_shared_unit, rows_of
from pathnet_fer.experiments.phases import SOURCE_EXPERIMENT
from pathnet_fer.experiments.run_dir import deployed_path, staged_models
from pathnet_fer.formats.loaded_model import TEMPERATURE_RANGE
from pathnet_fer.formats.model_calibration import (
    copy_model_file,
    set_calibration,
    set_head_temperatures,
)
from pathnet_fer.formats.model_file import load_model
from pathnet_fer.names import slug
from pathnet_fer.scoring.metrics import reliability_table
from pathnet_fer.scoring.reliability_figure import calibration_figure

KEY_COLUMNS = ("experiment", "arm", "task", "iteration", "fold")
# T in [0.05, 20]: beyond either end the fit is degenerate. The same range a model file's
# temperature is checked against on load and on write (one constant, so they agree).
LOG_T_BOUNDS = (math.log(TEMPERATURE_RANGE[0]), math.log(TEMPERATURE_RANGE[1]))


def _log(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-12, 1.0))


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)``: the same as dividing the logits by ``T`` (soft-max is
    shift-invariant), so it works on saved probabilities."""
    z = _log(proba) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(proba: np.ndarray, labels: np.ndarray) -> float:
    """The ``T`` minimising the negative log-likelihood of ``labels`` (searched over
    log T, bounded so a perfectly separated set does not run off to T -> 0)."""
    logp = _log(proba)
    labels = np.asarray(labels, dtype=np.int64)
    if logp.ndim != 2 or len(logp) != len(labels) or len(labels) == 0:
        raise ValueError(f"proba {logp.shape} and {len(labels)} labels do not match")
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, labels]))

    best = minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded")
    return float(np.exp(best.x))


# --------------------------------------------------------------------------- held-out files


def save_heldout(
    path: Path, keys: list[Any], probas: list[np.ndarray], labels: list, subjects: list
) -> None:
    """One phase's held-out probabilities, labels and subjects, every run in one ``.npz``
    (plain arrays only)."""
    n = [len(p) for p in probas]
    columns = {c: np.repeat(np.asarray([str(getattr(k, c)) for k in keys]), n) for c in KEY_COLUMNS}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        proba=np.concatenate(probas).astype(np.float32),
        label=np.concatenate([np.asarray(y, dtype=np.int64) for y in labels]),
        subject=np.concatenate([np.asarray(s).astype(str) for s in subjects]),
        **columns,
    )
    tmp.replace(path)


def read_heldout(run_dir: Path) -> list[dict[str, Any]]:
    """Every saved held-out set of a run directory: one dict per (key, proba, label)."""
    out = []
    for path in sorted(Path(run_dir).glob("parts/*/*_heldout.npz")):
        with np.load(path, allow_pickle=False) as f:
            cols = {c: f[c] for c in KEY_COLUMNS}
            proba, label = f["proba"], f["label"]
            subject = f["subject"] if "subject" in f else np.full(len(label), "")
        frame = pd.DataFrame(cols)
        for key, index in frame.groupby(list(KEY_COLUMNS), sort=True).indices.items():
            record = dict(zip(KEY_COLUMNS, key, strict=True))
            record.update(
                proba=proba[index].astype(np.float64), label=label[index], subject=subject[index]
            )
            out.append(record)
    return out


# --------------------------------------------------------------------------- a run's table


def _scores(proba: np.ndarray, label: np.ndarray) -> dict[str, float]:
    conf = proba.max(1)
    correct = proba.argmax(1) == label
    return {
        "accuracy": float(correct.mean()),
        "confidence": float(conf.mean()),
        "ece": float(reliability_table(conf, correct)["ece"].iloc[0]),
    }


def cross_fitted(sets: list[dict[str, Any]]) -> pd.DataFrame:
    """Per held-out set: accuracy, mean max-probability and ECE before and after a
    temperature fit on the other folds of the same experiment, arm, task and iteration.
    A group with one fold has nothing to fit on: its calibrated columns are NaN."""
    rows = []
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for s in sets:
        groups.setdefault((s["experiment"], s["arm"], s["task"], s["iteration"]), []).append(s)
    for members in groups.values():
        for s in members:
            others = [o for o in members if o is not s]
            row = {c: s[c] for c in KEY_COLUMNS} | {"n": len(s["label"])}
            row |= {f"{k}_raw": v for k, v in _scores(s["proba"], s["label"]).items()}
            if others:
                t = fit_temperature(
                    np.concatenate([o["proba"] for o in others]),
                    np.concatenate([o["label"] for o in others]),
                )
                cal = _scores(apply_temperature(s["proba"], t), s["label"])
                row |= {"temperature": t, "confidence_calibrated": cal["confidence"],
                        "ece_calibrated": cal["ece"]}  # fmt: skip
            else:
                row |= {"temperature": np.nan, "confidence_calibrated": np.nan,
                        "ece_calibrated": np.nan}  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows)


def final_temperatures(sets: list[dict[str, Any]], arm: str = CALIBRATES_FINAL.name) -> dict:
    """``{(experiment, task): (T, n_faces, folds)}`` from every fold and iteration of
    ``arm``: the temperature the final model of that experiment and task is given."""
    pooled: dict[tuple, list[dict[str, Any]]] = {}
    for s in sets:
        if s["arm"] == arm:
            pooled.setdefault((s["experiment"], s["task"]), []).append(s)
    out = {}
    for key, members in pooled.items():
        proba = np.concatenate([m["proba"] for m in members])
        label = np.concatenate([m["label"] for m in members])
        folds = sorted({int(m["fold"]) for m in members})
        out[key] = (fit_temperature(proba, label), len(label), folds)
    return out


# --------------------------------------------------------------------------- run directory


def mean_std(values: pd.Series) -> str:
    """``mean ± std`` (population std) of the non-missing values, ``-`` when none."""
    v = values.dropna()
    if v.empty:
        return "-"
    return f"{v.mean():.3f} ± {v.std(ddof=0):.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def calibration_markdown(table: pd.DataFrame, finals: list[dict[str, Any]]) -> str:
    """The report's calibration section: the cross-fitted table and the final models'
    temperatures."""
    lines = [
        "## Calibration (temperature scaling, cross-fitted)",
        "",
        "Mean max-probability (confidence) against accuracy on each fold's held-out faces, "
        "before and after a temperature fit on the *other* folds' held-out predictions "
        "(the arg-max, hence accuracy, does not change). A calibrated model has confidence "
        "= accuracy; ECE = expected calibration error (10 bins). Mean ± std over folds x "
        "iterations. A task with one fold has nothing to fit on (-).",
        "",
        "| experiment | arm | task | accuracy | confidence | calibrated | ECE | ECE calibrated "
        "| T |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (e, a, t), g in table.groupby(["experiment", "arm", "task"], sort=True):
        lines.append(
            f"| {e} | {a} | {t} | {mean_std(g.accuracy_raw)} | {mean_std(g.confidence_raw)} "
            f"| {mean_std(g.confidence_calibrated)} | {mean_std(g.ece_raw)} "
            f"| {mean_std(g.ece_calibrated)} | {mean_std(g.temperature)} |"
        )
    if finals:
        lines += ["", "Final models (trained on every subject) carry the temperature fit on "
                  "all folds' held-out predictions of the transfer arm, source models (`models/"
                  "sources/`) the one fit on every source unit's held-out faces of their "
                  "dataset (a fixed split's: its test split); `predict` applies it:", ""]  # fmt: skip
        lines += [
            f"- `{f['model']}`: T = {f['temperature']:.3f} ({f['n_faces']} held-out faces, "
            f"folds {', '.join(map(str, f['folds']))})"
            for f in finals
        ]
    return "\n".join(lines) + "\n"


def calibrate_run(run_dir: str | Path) -> dict[str, Any]:
    """Write ``calibration.csv`` (one row per held-out set: accuracy, confidence and ECE
    before and after the cross-fitted temperature), reliability figures of the transfer
    arm per experiment and task, and the temperature into each final and source model file.
    Returns ``{"table", "markdown", "figures", "finals", "sets"}`` (``sets``: the
    held-out sets read); an empty table when the run
    saved no held-out predictions (older runs)."""

    run_dir = Path(run_dir)
    sets = read_heldout(run_dir)  # final fits save none: they have no held-out faces
    if not sets:
        deploy_models(run_dir, written=set())
        return {"table": pd.DataFrame(), "markdown": "", "figures": [], "finals": [], "sets": []}
    table = cross_fitted(sets)
    table.to_csv(run_dir / "calibration.csv", index=False)
    figures = []
    fitted = CALIBRATES_FINAL.name
    for (e, t), g in rows_of(table, fitted).groupby(["experiment", "task"]):
        members = [s for s in sets if (s["experiment"], s["arm"], s["task"]) == (e, fitted, t)]
        rows = g.set_index(["iteration", "fold"])
        raw, cal = [], []
        for s in members:
            temp = rows.loc[(s["iteration"], s["fold"]), "temperature"]
            raw.append(s["proba"])
            cal.append(apply_temperature(s["proba"], temp) if np.isfinite(temp) else s["proba"])
        label = np.concatenate([s["label"] for s in members])
        curves = {}
        for name, probas in (("raw", raw), ("cross-fitted T", cal)):
            p = np.concatenate(probas)
            curves[name] = reliability_table(p.max(1), p.argmax(1) == label)
        path = run_dir / "figures" / f"calibration_{slug(e)}_{slug(t)}.png"
        figures.append(calibration_figure(curves, path, f"{e}: {t} held-out ({fitted})"))
    finals = []
    temps = {
        fitted: final_temperatures(sets, fitted),
        SOURCE.name: final_temperatures(sets, SOURCE.name),
    }
    written: set[Path] = set()
    for staged, path in model_files(run_dir, "*/final.pt") + model_files(run_dir, "sources/*.pt"):
        model = load_model(staged)
        task = model.dataset
        arm = SOURCE if path.parent.name == "sources" else CALIBRATES_FINAL
        experiment = SOURCE_EXPERIMENT if arm.shared_unit else model.metadata.get("experiment")
        found = temps[arm.name].get((str(experiment), task))
        if found is None:  # no held-out predictions of this arm and task were saved
            continue
        temperature, n, folds = found
        what = "source units" if arm.shared_unit else f"{arm.name} arm"
        written.add(path)
        set_calibration(
            staged,
            {
                "temperature": temperature,
                "method": "temperature scaling (NLL), fit on held-out predictions",
                "fit_on": f"{n} held-out faces of {task}, {what}, folds {folds}",
            },
            loaded=model,
            out=path,
        )
        finals.append({"model": str(path.relative_to(run_dir)), "temperature": temperature,
                       "n_faces": n, "folds": folds})  # fmt: skip
    for staged, path in model_files(run_dir, "*/*_heads.pt"):
        finals += _calibrate_heads(staged, path, temps, table)
        written.add(path)
    deploy_models(run_dir, written)
    return {"table": table, "markdown": calibration_markdown(table, finals),
            "figures": figures, "finals": finals, "sets": sets}  # fmt: skip


def model_files(run_dir: Path, pattern: str) -> list[tuple[Path, Path]]:
    """``(file to read, file to write)`` for the model files matching ``pattern``: each
    file a job staged and its place under ``models/``; a file under ``models/`` that no
    job staged (a run directory from before staging) is read and written in place."""
    pairs = {deployed_path(run_dir, p): p for p in sorted(staged_models(run_dir).glob(pattern))}
    for path in sorted((run_dir / "models").glob(pattern)):
        pairs.setdefault(path, path)
    return [(staged, path) for path, staged in sorted(pairs.items())]


def deploy_models(run_dir: Path, written: set[Path]) -> None:
    """The deploy step's rest: every staged model file the calibration did not write
    (fold models, a model with nothing to fit on) copied to its place under ``models/``,
    so that each file there is written once, by this step."""
    for staged in sorted(staged_models(run_dir).rglob("*.pt")):
        path = deployed_path(run_dir, staged)
        if path not in written:
            copy_model_file(staged, path)


def _calibrate_heads(
    staged: Path, path: Path, temps: dict, table: pd.DataFrame
) -> list[dict[str, Any]]:
    """Each head of a chain's heads model gets the temperature its own single-path file
    would: the source head the source units' fit, a link head of a final fit the fit on
    all folds of the transfer arm for its link, a link head of a fold model the fit on the
    *other* folds (cross-fitted: never its own held-out faces). A head with nothing to fit
    on gets T = 1 (listed in the report with 0 faces). ``staged``: the file read;
    ``path``: the file written."""

    model = load_model(staged)
    heads = model.model
    meta = model.metadata
    experiment = str(meta.get("experiment"))
    fits, out = {}, []
    for name, desc in zip(heads.names, heads.descriptions, strict=True):
        dataset = str(desc.get("dataset", name))
        if is_shared_unit(str(desc.get("arm"))):
            found = temps[SOURCE.name].get((SOURCE_EXPERIMENT, dataset))
            what = "source units"
        elif meta.get("final_fit"):
            found = temps[CALIBRATES_FINAL.name].get((experiment, dataset))
            what = f"{CALIBRATES_FINAL.name} arm"
        else:
            group = rows_of(table, CALIBRATES_FINAL)
            group = group[(group.experiment == experiment) & (group.task == dataset)
                          & (group.iteration == str(meta.get("iteration")))]  # fmt: skip
            mine = group.fold == str(meta.get("fold"))
            t = float(group[mine].temperature.iloc[0]) if mine.any() else float("nan")
            others = sorted(int(f) for f in group[~mine].fold)
            found = (t, int(group[~mine].n.sum()), others) if np.isfinite(t) else None
            what = "transfer arm, cross-fitted"
        if found is None:  # said, and reset (a re-run must not keep a stale fit)
            fits[name] = {"temperature": 1.0, "fit_on": "nothing to fit on: uncalibrated"}
            out.append({"model": f"models/{path.parent.name}/{path.name} (head {name})",
                        "temperature": 1.0, "n_faces": 0, "folds": []})  # fmt: skip
            continue
        temperature, n, folds = found
        fits[name] = {
            "temperature": temperature,
            "fit_on": f"{n} held-out faces of {dataset}, {what}, folds {folds}",
        }
        out.append({"model": f"models/{path.parent.name}/{path.name} (head {name})",
                    "temperature": temperature, "n_faces": n, "folds": folds})  # fmt: skip
    if fits:
        set_head_temperatures(staged, fits, loaded=model, out=path)
    else:
        copy_model_file(staged, path)
    return out
