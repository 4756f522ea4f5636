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

Several seeds (``seeds``, ``--seeds``): steps 1-3 once per seed into ``run_dir/seedN``, then
the seeds' files shipped as one model (``combine_built``, pretrained/seeds.py), measured
as it ships.

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

from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.experiments.calibration import fit_temperature
from pathnet_fer.experiments.config import find_config
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.datasets import dataset_folds
from pathnet_fer.experiments.plan import RunSlot, source_job
from pathnet_fer.experiments.provenance import git_commit, host
from pathnet_fer.experiments.runner import run_experiment
from pathnet_fer.formats.class_prior import class_frequencies
from pathnet_fer.formats.loaded_model import MIRROR_KEY, LoadedModel
from pathnet_fer.formats.model_file import load_model, save_loaded, save_path_model
from pathnet_fer.pretrained import MODEL_FILE, RECIPE, pretrained_path
from pathnet_fer.pretrained.figures import (
    FIGURES,
    SAMPLE_SEED,
    SAMPLE_SIZE,
    FigureSpec,
    measure,
    sample_accuracy,
)
from pathnet_fer.pretrained.recipe import recipe_differences
from pathnet_fer.pretrained.seeds import combine_seeds, seed_name
from pathnet_fer.pretrained.summary import rounded, summary_text

DEFAULT_RUN = Path("runs") / "pretrained"
MAX_BYTES = 2 * 1024 * 1024
DEFAULT_PRIOR = "uniform"
"""The class prior the shipped model assumes unless told (``--prior``): on people in none
of its training sets, whose emotions are about equally frequent, dividing out FER-2013's
training frequencies pays (docs/results-fer2013.md, "The training prior on new people")."""


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
    heads = loaded.head_priors  # several seeds as one model: each head records its own
    for recorded in [loaded.class_prior] if heads is None else list(heads.values()):
        if recorded is not None and not np.allclose(recorded, freq, atol=1e-9):
            raise ValueError(
                f"{loaded.path}: its recorded class prior {recorded} is not the training "
                f"split's {freq}: it was trained on other faces than the recipe's"
            )
    inference = {**(loaded.metadata.get(MIRROR_KEY) or {}), "prior": prior}
    if heads is not None:
        return replace(loaded, metadata={**loaded.metadata, MIRROR_KEY: inference}, prior=prior)
    inference["class_prior"] = freq
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
    seeds: Sequence[int] = (),
) -> BuildResult:
    """Run the recipe (resuming), measure its deployed model and write it into the
    package (``dest``, default ``pathnet_fer/pretrained/default.pt``). ``model``: another
    model file of the run (relative to ``run_dir``) to ship instead. ``mirror``: ship it
    mirror-averaged, recalibrated (``calibrate_mirrored``). ``prior``: the class prior it
    assumes by default (``with_prior``). ``seeds``: one seed trains that seed of the
    recipe; several build each into ``run_dir/seedN`` (a file ``run_dir/seedN.pt``, as one
    seed would) and ship them as one model (``combine_built``); none: the config's seed."""

    if len(seeds) > 1:
        if model:
            raise ValueError("--model ships one file of one run: not with several seeds")
        run_dir = Path(run_dir)
        members = [
            build_pretrained(
                config, overrides, run_dir / seed_name(s), run_dir / f"{seed_name(s)}.pt",
                None, figures, sample, restart, quiet, log, mirror, prior, seeds=(s,),
            ).path
            for s in seeds
        ]  # fmt: skip
        command = _command("build", overrides, mirror, prior, seeds)
        return combine_built(members, config, overrides, dest, figures, sample, log, prior,
                             command, run_dir / "shipped")  # fmt: skip
    started = time.perf_counter()
    command = _command("build", overrides, mirror, prior, seeds)  # one seed: --seeds N
    overrides = [*overrides, *(f"seed={s}" for s in seeds)]
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


def _command(
    action: str, overrides: Sequence[str], mirror: bool, prior: str, seeds: Sequence[int]
) -> str:
    """The ``pathnet-fer pretrained`` command line that builds what these settings build."""
    return (
        f"pathnet-fer pretrained {action}"
        + (f" --seeds {' '.join(map(str, seeds))}" if seeds else "")
        + "".join(f" --set '{o}'" for o in overrides)
        + ("" if mirror else " --mirror off")
        + ("" if prior == DEFAULT_PRIOR else f" --prior {prior}")
    )


def combine_built(
    members: Sequence[str | Path],
    config: str | Path = RECIPE,
    overrides: Sequence[str] = (),
    dest: str | Path | None = None,
    figures: Sequence[FigureSpec] = FIGURES,
    sample: tuple[int, int] = (SAMPLE_SIZE, SAMPLE_SEED),
    log: Callable[[str], None] = print,
    prior: str = DEFAULT_PRIOR,
    command: str | None = None,
    staging: str | Path | None = None,
) -> BuildResult:
    """Several files built by ``pathnet-fer pretrained build``, each one seed of the recipe
    (``config`` with ``overrides`` and that seed: checked against what each file
    records), shipped as one model (pretrained/seeds.py), measured as it ships. Seeds
    may be trained anywhere (one machine each) and combined here."""

    started = time.perf_counter()
    paths = [Path(p) for p in members]
    loaded = [load_model(p) for p in paths]
    seeds = []
    for path, m in zip(paths, loaded, strict=True):
        recorded = (m.metadata.get("pretrained") or {}).get("config") or {}
        if "seed" not in recorded:
            raise ValueError(f"{path} is not a file `pathnet-fer pretrained build` wrote")
        seed = int(recorded["seed"])
        own = [f"seed={seed}"]
        if (recorded.get("protocol") or {}).get("source_generations") is not None:
            # the member's own destination budget: it trained none of its source
            own += [f"{key}={json.dumps(_get(recorded, key))}" for key in DESTINATION_ONLY]
        diff = recipe_differences(path, config, [*overrides, *own], seeds=None)
        if diff:
            raise ValueError(f"{path} is not seed {seed} of the recipe:\n  " + "\n  ".join(diff))
        seeds.append(seed)
    order = sorted(range(len(seeds)), key=seeds.__getitem__)  # heads in seed order, always
    paths, loaded, seeds = ([xs[i] for i in order] for xs in (paths, loaded, seeds))
    heads, metadata = combine_seeds(loaded, seeds, prior)
    first = loaded[0]
    hosts = [h for m in loaded for h in (m.metadata["pretrained"].get("trained_on") or [])]
    provenance = {
        "recipe": config,
        "overrides": list(overrides),
        "seeds": seeds,
        "members": [
            {"seed": s, "file": p.name}
            | {k: m.metadata["pretrained"].get(k) for k in _MEMBER_PROVENANCE}
            for s, p, m in zip(seeds, paths, loaded, strict=True)
        ],
        # what rebuilds it from the recipe, and what made it from the seeds' files
        "build_command": command or _command("build", overrides, first.mirror, prior, seeds),
        "combined_by": " ".join(
            [_command("combine", overrides, first.mirror, prior, ()), *(p.name for p in paths)]
        ),
        "trained_on": [h for i, h in enumerate(hosts) if h not in hosts[:i]] or None,
    }
    cfg = load_config(config, list(overrides))
    with tempfile.TemporaryDirectory() as tmp:
        # written and read back: load_model is what makes (and checks) a heads LoadedModel
        file = save_path_model(Path(tmp) / "seeds.pt", heads, class_names=heads.class_names,
                               face_settings=first.face_settings, dataset=first.dataset,
                               metadata=metadata)  # fmt: skip
        result = ship(load_model(file), cfg, Path(staging or tmp), provenance, dest, figures,
                      sample, log, prior)  # fmt: skip
    result.seconds = time.perf_counter() - started
    log(f"wrote {result.path}: seeds {', '.join(map(str, seeds))} as one model")
    return result


DESTINATION_ONLY = ("evolution.generations", "protocol.destination_generations")
"""Settings that train only the destinations of a recipe's study when it sets the source's
own budget (``protocol.source_generations``): a member built with fewer destination
generations (``--set evolution.generations=2``, to save time) holds the same source, so
each member is checked with its own values of these."""


def _get(config: dict[str, Any], dotted: str) -> Any:
    """``config["a"]["b"]`` for ``"a.b"`` (None where a level is missing)."""
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


_MEMBER_PROVENANCE = ("build_command", "git_commit", "trained_on", "figures", "sample")
"""What the combined file keeps of each member's build record."""


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
        **{k: old[k] for k in ("source_model", "seeds", "members", "combined_by") if k in old},
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
    recorded = [loaded.class_prior] if loaded.head_priors is None else loaded.head_priors.values()
    log(f"class prior {prior} (training frequencies recorded: "
        f"{'; '.join(rounded(p) for p in recorded)})")  # fmt: skip
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
