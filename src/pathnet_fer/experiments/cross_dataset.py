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

Each candidate whose file records its training faces' class frequencies (a heads model:
every head's) is scored twice, once with each class prior (``--prior train|uniform``,
formats/class_prior.py): the file's default under the candidate's name, the other as
``"<name>, <prior> prior"``.
The prior changes no weight, only which emotions a model leans to on new people, so which
prior to deploy is a cross-dataset question like which file.

Columns (one row per candidate and dataset): ``candidate``, ``deploy`` (the file a user
runs for it: ``predict --model``), ``prior`` (the class prior its figures assume: pass
``--prior`` with it where it is not the file's default), ``dataset``, ``faces`` (which
faces, and why they are new to the candidate), ``model`` (file and head), ``n`` (face
crops), ``accuracy`` (frames), ``top_share`` (share of the most predicted emotion:
collapse above 0.4 on a balanced set), ``confidence`` (mean calibrated max-probability;
calibrated = close to accuracy), ``clips`` (majority-vote clips right / clips, for
datasets with several frames per clip).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathnet_fer.datasets.loading import DataMissingError, face_settings_for, load_dataset
from pathnet_fer.datasets.one_dataset import dataset_catalog
from pathnet_fer.experiments.config import ConfigError
from pathnet_fer.experiments.datasets import dataset_folds
from pathnet_fer.formats.class_prior import PRIORS
from pathnet_fer.formats.loaded_model import ModelFileError, check_compatible
from pathnet_fer.formats.model_file import load_model
from pathnet_fer.names import slug
from pathnet_fer.pathnet.heads_model import HeadsModel
from pathnet_fer.pretrained import NoShippedModelError, pretrained_path
from pathnet_fer.scoring.on_faces import EvaluationError, check_crops, evaluate_faces

COLUMNS = ["candidate", "deploy", "prior", "dataset", "faces", "model", "n", "accuracy",
           "top_share", "confidence", "clips"]  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """A deployable model, and its fold counterpart for the datasets it saw every
    subject of (``fold``; None: the same file)."""

    name: str
    path: Path
    head: str = "combined"  # or a head's name, or LAST
    fold: Path | None = None
    deploy: Path | None = None  # the file a user runs (None: ``path``)
    prior: str | None = None  # ``--prior`` it is scored with (None: the file's default)


LAST = "<last link>"


def _as_candidate(cand: Candidate, loaded: Any) -> Any:
    """``loaded`` answering as ``cand`` does: its head, then its class prior."""
    model = _with_head(loaded, cand.head)
    return model if cand.prior is None else model.with_prior(cand.prior)


def with_priors(cands: list[Candidate], models: dict[str, Any]) -> list[Candidate]:
    """Each candidate, followed by the same file under the other class prior where its
    model (``models[name]``, as scored) records the training frequencies to divide out;
    ``models`` gains the variants' models."""

    out = []
    for c in cands:
        out.append(c)
        model = models[c.name]
        if not model.has_prior:
            continue  # an older file: only its own probabilities
        other = next(p for p in PRIORS if p != model.prior)
        variant = replace(c, name=f"{c.name}, {other} prior", prior=other)
        models[variant.name] = model.with_prior(other)
        out.append(variant)
    return out


def _with_head(loaded: Any, head: str) -> Any:
    return loaded.with_head(loaded.head_names[-1] if head == LAST else head)


def _held_subjects(fold: Any, dataset: str) -> set[str] | None:
    """The subjects of ``dataset`` a fold model (or heads model) held out, if recorded."""

    if isinstance(fold.model, HeadsModel):
        held: set[str] = set()
        for desc in fold.model.descriptions:  # the latest link of that dataset that names any
            if desc.get("dataset") == dataset and desc.get("test_subjects"):
                held = set(map(str, desc["test_subjects"]))
        return held or None
    if fold.dataset == dataset:
        return set(map(str, fold.metadata.get("test_subjects") or [])) or None
    return None


def candidates(run_dir: Path, config: Any, shipped: Path | None = None) -> list[Candidate]:
    """The run's deployable models (see module doc), then the shipped one."""

    out = []
    for path in sorted((run_dir / "models" / "sources").glob("*__fold1__it1.pt")):
        out.append(Candidate(f"source alone ({path.name.split('__')[1]})", path))
    for s in config.sets:
        folder = run_dir / "models" / slug(s.name)
        heads = folder / "final_heads.pt"
        # the fold counterpart (save_models best: <arm>_best; all: <arm>_it1_fold1 first)
        fold_heads = sorted(p for p in folder.glob("*_heads.pt") if p.name != "final_heads.pt")
        fold = fold_heads[0] if fold_heads else None
        if heads.exists():
            out.append(Candidate(f"{s.name}: last link ({s.links[-1]})", heads, LAST, fold,
                                 folder / "final.pt"))  # fmt: skip
            out.append(Candidate(f"{s.name}: every link, combined", heads, "combined", fold))
        elif (folder / "final.pt").exists():
            single = sorted(p for p in folder.glob("*.pt")
                            if p.name != "final.pt" and not p.name.startswith("scratch"))  # fmt: skip
            out.append(Candidate(f"{s.name}: last link ({s.links[-1]})", folder / "final.pt",
                                 fold=single[0] if single else None))  # fmt: skip
    if shipped is not None and shipped.exists():
        out.append(Candidate("shipped pretrained model", shipped))
    return out


SAME_FACES = {"ferplus": "fer2013"}
"""Adapters that read the same images as another (FER+ relabels FER-2013's faces)."""
MIN_COMMON = 30
"""Fewest faces every candidate never saw for a dataset to be scored on those alone."""


def _family(adapter: str) -> str:
    return SAME_FACES.get(adapter, adapter)


def _sharing(model: Any, adapter: str) -> list[tuple[int, dict[str, Any]]]:
    """The links (position in the chain, ``trained_on`` item) whose faces come from the
    same images as ``adapter`` (by adapter: two names over one folder are one dataset)."""
    out = []
    items = model.metadata.get("trained_on") or []
    if not items and model.dataset:  # an older file: its own dataset, as its only link
        items = [{"dataset": model.dataset, "adapters": [model.dataset]}]
    for pos, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        adapters = {_family(str(a)) for a in item.get("adapters") or [item.get("dataset")]}
        if _family(adapter) in adapters:
            out.append((pos, item))
    return out


def _allowed(cand: Candidate, model: Any, name: str, d: Any, config: Any) -> tuple:
    """``(scorer, row index, faces text)`` of the faces of ``name`` the candidate never
    trained on, or ``(None, None, reason)`` when it has none to offer."""

    fixed = config.datasets[name].folds == "fixed"
    every = dataset_folds(config, name, d)[0].test_index if fixed else np.arange(len(d.y))
    sharing = _sharing(model, config.datasets[name].adapter)
    if not sharing:
        what = "its test split" if fixed else "every face"
        return model, every, f"{what} (never trained on these images)"
    if fixed and all(pos == 0 for pos, _ in sharing):
        # a fixed-split source trains on the training split only (plan.source_job)
        return model, every, "its test split (trained on its training split only)"
    if any(item.get("members") for _, item in sharing):
        return None, None, "learnt in a pooled link (no held-out side of its own)"
    if cand.fold is None:
        return None, None, "learnt every subject, and no fold model was saved"
    fold = load_model(cand.fold)
    if cand.prior is not None and not fold.has_prior:
        return None, None, "its fold model records no training prior to divide out"
    if fixed:  # a fold model's fixed-split link trained on the training split only
        return _as_candidate(cand, fold), every, "its test split (the fold model)"
    held = _held_subjects(fold, name)
    if not held:
        return None, None, "learnt every subject; its fold model names no held-out ones"
    index = np.flatnonzero(np.isin(d.subjects.astype(str), sorted(held)))
    text = f"fold {fold.metadata.get('fold')}'s {len(held)} held-out people (the fold model)"
    return _as_candidate(cand, fold), index, text


class _Probas:
    """Each distinct head's calibrated probabilities on a dataset's faces, computed once:
    a source file and the source head of a heads model are the same weights (and
    temperature), a combination is its heads' mix. Keyed by the weights' digest and every
    inference setting (temperature, mirror averaging, class prior)."""

    BATCH = 512

    def __init__(self) -> None:
        self.memo: dict[tuple, np.ndarray] = {}

    def __call__(self, model: Any, images: np.ndarray, key: str) -> np.ndarray:
        if isinstance(model.model, HeadsModel):  # predict_proba's rule, each head memoised
            return model.mix({n: (None, self(model.with_head(n), images, key))
                              for n in model.head_names})  # fmt: skip
        ident = (_digest(model.model), model.temperature, model.mirror, model.prior,
                 model.class_prior, key, len(images))  # fmt: skip
        if ident not in self.memo:
            self.memo[ident] = np.concatenate(
                [model.predict_proba(images[i : i + self.BATCH])
                 for i in range(0, len(images), self.BATCH)]
            ) if len(images) else np.zeros((0, len(model.class_names)))  # fmt: skip
        return self.memo[ident]


def _digest(module: Any) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _score(model: Any, images, frames, class_names, proba=None) -> dict[str, Any]:

    ev = evaluate_faces(model, images, frames, class_names, proba=proba)
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
    ``evaluate``'s loader (e.g. ``{"crema-d-sample": <data>/crema-d-sample}``).

    Within a dataset every candidate is scored on the same faces, the ones none of them
    trained on, when there are at least ``MIN_COMMON``; otherwise each on its own (the
    ``faces`` column says which). A candidate with no face of a dataset it never saw gets a
    row with no figures and the reason."""

    run_dir = Path(run_dir)
    rows: list[dict[str, Any]] = []
    # every dataset a set learns from, a pooled link's members one by one
    names = list(dict.fromkeys(m for s in config.sets for link in s.links
                               for m in config.members(link)))  # fmt: skip
    cands = candidates(run_dir, config, Path(shipped) if shipped else None)
    probas = _Probas()
    models = {c.name: _with_head(load_model(c.path), c.head) for c in cands}
    cands = with_priors(cands, models)
    for name in names:
        settings = face_settings_for(config, name)
        usable = []
        for c in cands:
            try:
                check_compatible(models[c.name].input, settings)
                usable.append(c)
            except ModelFileError:
                continue  # another crop size: not comparable on this study's crops
        if not usable:
            continue
        d = load_dataset(config, name)
        allowed = {c.name: _allowed(c, models[c.name], name, d, config) for c in usable}
        indices = [ix for _, ix, _ in allowed.values() if ix is not None]
        common = indices[0] if indices else None
        for ix in indices[1:]:
            common = np.intersect1d(common, ix)
        shared = common is not None and len(common) >= MIN_COMMON
        for c in usable:
            scorer, index, faces = allowed[c.name]
            row = {"candidate": c.name, "deploy": _deploy(c, run_dir),
                   "prior": models[c.name].prior, "dataset": name, "faces": faces,
                   "model": "", "n": 0, "accuracy": np.nan, "top_share": np.nan,
                   "confidence": np.nan, "clips": ""}  # fmt: skip
            if scorer is not None:
                if shared and len(common) < len(index):
                    index = common
                    faces = f"{len(common)} faces no candidate trained on ({faces})"
                elif shared:
                    faces = f"{faces}; the same faces for every candidate"
                images = d.faces.images[index]
                key = f"{name}:{hashlib.sha256(np.asarray(index).tobytes()).hexdigest()}"
                row.update(faces=faces, model=_shown(scorer.path or c.path, run_dir, c.head),
                           **_score(scorer, images, d.faces.frames.iloc[index], d.class_names,
                                    probas(scorer, images, key)))  # fmt: skip
            rows.append(row)
    for name, folder in (clip_sets or {}).items():
        if not Path(folder).is_dir():
            continue
        loaded: dict[str, Any] = {}  # crops per face settings (usually one for all)
        for c in cands:
            model = models[c.name]
            cfg = dataset_catalog(name, model.face_settings, root=folder)
            settings = face_settings_for(cfg, name)
            check_crops(model, settings, name)
            if settings.key() not in loaded:
                loaded[settings.key()] = load_dataset(cfg, name)
            d = loaded[settings.key()]
            images = d.faces.images
            row = _score(model, images, d.faces.frames, d.class_names,
                         probas(model, images, f"{name}:{settings.key()}"))  # fmt: skip
            rows.append({"candidate": c.name, "deploy": _deploy(c, run_dir),
                         "prior": model.prior, "dataset": name,
                         "faces": "every clip (never trained on)",
                         "model": _shown(c.path, run_dir, c.head), **row})  # fmt: skip
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
    """The candidate with the highest mean accuracy over the datasets every one of the
    run's own candidates was scored on (each dataset counts once, whatever its size); a
    candidate missing one of them (e.g. a shipped model at another crop size) is left
    out rather than the dataset. Ties: the first listed (the simpler model). None for
    an empty table."""
    if table.empty:
        return None
    wide = table.pivot_table(index="candidate", columns="dataset", values="accuracy",
                             sort=False, dropna=False)  # fmt: skip
    own = [c for c in wide.index if not str(c).startswith("shipped")]
    datasets = wide.loc[own].dropna(axis=1).columns if own else wide.dropna(axis=1).columns
    wide = wide[datasets].dropna(axis=0)
    if wide.empty or len(datasets) == 0:
        return None
    means = wide.mean(axis=1)
    best = means.idxmax()
    row = table[table.candidate == best].iloc[0].copy()
    row["mean_accuracy"] = float(means[best])
    row["datasets"] = list(datasets)
    return row


def write_cross_dataset(
    run_dir: Path, config: Any, *, clip_sets: dict[str, Path] | None = None
) -> tuple[pd.DataFrame, str]:
    """``cross_dataset.csv`` and the report's section (with the recommendation), the
    shipped model included when there is one and it takes the study's crops."""

    try:
        shipped: Path | None = pretrained_path()
    except NoShippedModelError:
        shipped = None
    (Path(run_dir) / "cross_dataset.csv").unlink(missing_ok=True)  # never a stale table
    table = cross_dataset_table(run_dir, config, shipped=shipped, clip_sets=clip_sets)
    table.to_csv(Path(run_dir) / "cross_dataset.csv", index=False)
    text = cross_dataset_markdown(table)
    best = recommended(table)
    if best is not None:
        text += (
            f"\nHighest mean accuracy over {', '.join(best['datasets'])} (each dataset "
            f"once): **{best['candidate']}** ({best['mean_accuracy']:.3f}): "
            f"`pathnet-fer predict --model {best['deploy']} --prior {best['prior']}`.\n"
        )
    return table, text


def cross_dataset_section(
    run_dir: Path, config: Any, *, clip_sets: dict[str, Path] | None = None
) -> str:
    """``write_cross_dataset``'s section, or one line saying why it could not be made (a
    missing dataset must not cost the rest of the report)."""

    try:
        return write_cross_dataset(Path(run_dir), config, clip_sets=clip_sets)[1]
    except (OSError, DataMissingError, ModelFileError, EvaluationError, ConfigError) as exc:
        first = (str(exc).splitlines() or [""])[0][:300]
        return (
            "## Deployed candidates on people they never saw (cross-dataset)\n\n"
            f"Not computed: {type(exc).__name__}: {first}\n"
        )
