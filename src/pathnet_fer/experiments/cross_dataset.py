"""Which model to deploy: every candidate on faces of people it never saw, per dataset.

A study ends with several models a user could take away: the source alone
(``models/sources/``), each set's final fit (its last link), the set's heads model
(``final_heads.pt``: every link, combined) and the shipped pretrained model. This table
scores each on every dataset of the study (and on extra clip sets such as CREMA-D's
sample), always on faces of people the candidate never trained on:

- a dataset the candidate never learnt from: all of its faces (a fixed-split dataset
  such as FER-2013: its test split, for every candidate alike);
- a fixed-split dataset it learnt from: its test split (every model of a study trains on
  the training split only);
- a dataset with subject folds it learnt from (a final fit's destination, which saw
  every subject): the saved *fold* counterpart (``<arm>_best[_heads].pt``, same recipe)
  on that fold's held-out people, said in the ``faces`` column.

Columns (one row per candidate and dataset): ``candidate``, ``deploy`` (the file a user
runs for it: ``predict --model``), ``dataset``, ``faces`` (which
faces, and why they are new to the candidate), ``model`` (file and head), ``n`` (face
crops), ``accuracy`` (frames), ``top_share`` (share of the most predicted emotion:
collapse above 0.4 on a balanced set), ``confidence`` (mean calibrated max-probability;
calibrated = close to accuracy), ``clips`` (majority-vote clips right / clips, for
datasets with several frames per clip).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = ["candidate", "deploy", "dataset", "faces", "model", "n", "accuracy", "top_share",
           "confidence", "clips"]  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """A deployable model, and its fold counterpart for the datasets it saw every
    subject of (``fold``; None: the same file)."""

    name: str
    path: Path
    head: str = "combined"  # or a head's name, or LAST
    fold: Path | None = None
    deploy: Path | None = None  # the file a user runs (None: ``path``)


LAST = "<last link>"


def _with_head(loaded: Any, head: str) -> Any:
    return loaded.with_head(loaded.head_names[-1] if head == LAST else head)


def _held_subjects(fold: Any, dataset: str) -> set[str] | None:
    """The subjects of ``dataset`` a fold model (or heads model) held out, if recorded."""
    from pathnet_fer.predict.heads import HeadsModel

    if isinstance(fold.model, HeadsModel):
        for desc in fold.model.descriptions:
            if desc.get("dataset") == dataset:
                return set(map(str, desc.get("test_subjects") or [])) or None
        return None
    if fold.dataset == dataset:
        return set(map(str, fold.metadata.get("test_subjects") or [])) or None
    return None


def candidates(run_dir: Path, config: Any, shipped: Path | None = None) -> list[Candidate]:
    """The run's deployable models (see module doc), then the shipped one."""
    from pathnet_fer.experiments.names import slug

    out = []
    for path in sorted((run_dir / "models" / "sources").glob("*__fold1__it1.pt")):
        out.append(Candidate(f"source alone ({path.name.split('__')[1]})", path))
    for s in config.sets:
        folder = run_dir / "models" / slug(s.name)
        heads = folder / "final_heads.pt"
        fold_heads = sorted(p for p in folder.glob("*_best_heads.pt"))
        fold = fold_heads[0] if fold_heads else None
        if heads.exists():
            out.append(Candidate(f"{s.name}: last link ({s.links[-1]})", heads, LAST, fold,
                                 folder / "final.pt"))  # fmt: skip
            out.append(Candidate(f"{s.name}: every link, combined", heads, "combined", fold))
        elif (folder / "final.pt").exists():
            single = sorted(p for p in folder.glob("*_best.pt") if "scratch" not in p.name)
            out.append(Candidate(f"{s.name}: last link ({s.links[-1]})", folder / "final.pt",
                                 fold=single[0] if single else None))  # fmt: skip
    if shipped is not None and shipped.exists():
        out.append(Candidate("shipped pretrained model", shipped))
    return out


def _seen(model: Any) -> set[str]:
    from pathnet_fer.predict.evaluate import _seen_in_training

    return _seen_in_training(model)


def _score(model: Any, images, frames, class_names) -> dict[str, Any]:
    from pathnet_fer.predict.evaluate import evaluate_faces

    ev = evaluate_faces(model, images, frames, class_names)
    row = {
        "n": len(ev.frames),
        "accuracy": ev.frame["accuracy"],
        "top_share": ev.frame["top_share"],
        "confidence": float(ev.frames["p_max"].mean()),
        "clips": "",
    }
    if len(ev.clips) < len(ev.frames):
        row["clips"] = f"{int(ev.clips['majority_correct'].sum())}/{len(ev.clips)}"
    return row


def cross_dataset_table(
    run_dir: str | Path,
    config: Any,
    *,
    shipped: str | Path | None = None,
    clip_sets: dict[str, Path] | None = None,
) -> pd.DataFrame:
    """One row per candidate and dataset (see module doc); ``clip_sets``: extra
    labelled folders nobody trained on (name -> folder), scored whole by
    ``evaluate``'s loader (e.g. ``{"crema-d-sample": <data>/crema-d-sample}``)."""
    from pathnet_fer.experiments.datasets import dataset_folds, face_settings_for, load_dataset
    from pathnet_fer.predict.evaluate import evaluate_heads
    from pathnet_fer.predict.model_file import ModelFileError, check_compatible, load_model

    run_dir = Path(run_dir)
    rows: list[dict[str, Any]] = []
    # every dataset a set learns from, a pooled link's members one by one
    names = list(dict.fromkeys(m for s in config.sets for link in s.links
                               for m in config.members(link)))  # fmt: skip
    data = {}
    for cand in candidates(run_dir, config, Path(shipped) if shipped else None):
        model = _with_head(load_model(cand.path), cand.head)
        for name in names:
            try:
                check_compatible(model.input, face_settings_for(config, name))
            except ModelFileError:
                continue  # another crop size: not comparable on this study's crops
            if name not in data:
                data[name] = load_dataset(config, name)
            d = data[name]
            fixed = config.datasets[name].folds == "fixed"
            index = dataset_folds(config, name, d)[0].test_index if fixed else None
            scorer, faces, shown = model, "its test split" if fixed else "every face", cand.path
            if not fixed and name in _seen(model):
                if cand.fold is None:
                    continue  # no fold counterpart saved: nothing held out to score
                fold_file = load_model(cand.fold)
                held = _held_subjects(fold_file, name)
                if not held:
                    continue
                scorer = _with_head(fold_file, cand.head)
                index = np.flatnonzero(np.isin(d.subjects.astype(str), list(held)))
                shown = cand.fold
                faces = (f"fold {fold_file.metadata.get('fold')}'s {len(held)} held-out people "
                         "(the fold model of the same recipe)")  # fmt: skip
            elif name in _seen(model):
                faces += " (trained on its training split only)"
            else:
                faces += " (never trained on this dataset)"
            if index is not None and len(index) == 0:
                continue
            images = d.faces.images if index is None else d.faces.images[index]
            frames = d.faces.frames if index is None else d.faces.frames.iloc[index]
            rows.append({"candidate": cand.name, "deploy": _deploy(cand, run_dir),
                         "dataset": name, "faces": faces,
                         "model": _shown(shown, run_dir, cand.head),
                         **_score(scorer, images, frames, d.class_names)})  # fmt: skip
        for name, folder in (clip_sets or {}).items():
            if not Path(folder).is_dir():
                continue
            head = model.head_names[-1] if cand.head == LAST else cand.head
            ev = evaluate_heads(cand.path, name, [head], root=folder)[head]
            clips = f"{int(ev.clips['majority_correct'].sum())}/{len(ev.clips)}"
            rows.append({"candidate": cand.name, "deploy": _deploy(cand, run_dir),
                         "dataset": name, "faces": "every clip (never trained on)",
                         "model": _shown(cand.path, run_dir, cand.head), "n": len(ev.frames),
                         "accuracy": ev.frame["accuracy"], "top_share": ev.frame["top_share"],
                         "confidence": float(ev.frames["p_max"].mean()),
                         "clips": clips})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def _deploy(cand: Candidate, run_dir: Path) -> str:
    return _shown(cand.deploy or cand.path, run_dir, "combined")


def _shown(path: Path, run_dir: Path, head: str) -> str:
    try:
        text = str(Path(path).relative_to(run_dir))
    except ValueError:
        text = str(path)
    return (
        text
        if head == "combined"
        else f"{text} ({'last head' if head == LAST else 'head ' + head})"
    )


def cross_dataset_markdown(table: pd.DataFrame) -> str:
    """The report's section: accuracy (top share, confidence) per candidate and dataset."""
    if table.empty:
        return ""
    datasets = list(dict.fromkeys(table.dataset))
    lines = [
        "## Deployed candidates on people they never saw (cross-dataset)",
        "",
        "Each cell: frame accuracy (share of the most predicted emotion; mean calibrated "
        "confidence), and clips right by majority vote where a clip has several frames. "
        "A dataset the candidate learnt every subject of is scored with its fold model on "
        "that fold's held-out people (cross_dataset.csv says which faces and file). A top "
        "share above 0.40 on a balanced set is a collapse onto one emotion.",
        "",
        "| candidate | " + " | ".join(datasets) + " |",
        "|---|" + "---|" * len(datasets),
    ]
    for cand, g in table.groupby("candidate", sort=False):
        cells = []
        for name in datasets:
            r = g[g.dataset == name]
            if r.empty:
                cells.append("-")
                continue
            r = r.iloc[0]
            clip = f", clips {r.clips}" if r.clips else ""
            cells.append(f"{r.accuracy:.3f} ({r.top_share:.2f}; {r.confidence:.2f}){clip}")
        lines.append(f"| {cand} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def recommended(table: pd.DataFrame) -> pd.Series | None:
    """The candidate with the highest mean accuracy over the datasets every candidate
    was scored on (each dataset counts once, whatever its size); None for an empty
    table. Ties: the first listed (the simpler model)."""
    if table.empty:
        return None
    wide = table.pivot_table(index="candidate", columns="dataset", values="accuracy", sort=False)
    wide = wide.dropna(axis=1)
    if wide.shape[1] == 0:
        return None
    means = wide.mean(axis=1)
    best = means.idxmax()
    row = table[table.candidate == best].iloc[0].copy()
    row["mean_accuracy"] = float(means[best])
    row["datasets"] = list(wide.columns)
    return row


def write_cross_dataset(
    run_dir: Path, config: Any, *, clip_sets: dict[str, Path] | None = None
) -> tuple[pd.DataFrame, str]:
    """``cross_dataset.csv`` and the report's section (with the recommendation), the
    shipped model included when there is one and it takes the study's crops."""
    from pathnet_fer.pretrained import NoShippedModelError, pretrained_path

    try:
        shipped: Path | None = pretrained_path()
    except NoShippedModelError:
        shipped = None
    table = cross_dataset_table(run_dir, config, shipped=shipped, clip_sets=clip_sets)
    table.to_csv(Path(run_dir) / "cross_dataset.csv", index=False)
    text = cross_dataset_markdown(table)
    best = recommended(table)
    if best is not None:
        text += (
            f"\nHighest mean accuracy over {', '.join(best['datasets'])} (each dataset "
            f"once): **{best['candidate']}** ({best['mean_accuracy']:.3f}), "
            f"`{best['deploy']}`.\n"
        )
    return table, text


def cross_dataset_section(
    run_dir: Path, config: Any, *, clip_sets: dict[str, Path] | None = None
) -> str:
    """``write_cross_dataset``'s section, or one line saying why it could not be made (a
    missing dataset must not cost the rest of the report)."""
    try:
        return write_cross_dataset(Path(run_dir), config, clip_sets=clip_sets)[1]
    except (OSError, ValueError, RuntimeError) as exc:
        first = (str(exc).splitlines() or [""])[0][:300]
        return (
            "## Deployed candidates on people they never saw (cross-dataset)\n\n"
            f"Not computed: {type(exc).__name__}: {first}\n"
        )
