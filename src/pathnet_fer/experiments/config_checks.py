"""Validation of a whole experiment config, run by ``build_config``: protocol and executor
values, set chains and names, and every stage's settings built as a run would build them,
so a value a worker would refuse is refused before anything is written."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from pathnet_fer.data.registry import ADAPTERS
from pathnet_fer.evolution.config import EvolutionConfig
from pathnet_fer.experiments.config import (
    CLIP_VOTES,
    CUTS,
    EXECUTOR_KINDS,
    ITERATION_MODES,
    ConfigError,
    ExperimentConfig,
    SetSpec,
)
from pathnet_fer.experiments.limits import check_limits, check_memory, short_repr
from pathnet_fer.experiments.union_checks import check_shared_people, check_union
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.names import slug
from pathnet_fer.pathnet.config import PathNetConfig


def validate(config: ExperimentConfig) -> None:
    """Raise ConfigError naming the key of the first value a run would refuse."""
    p = config.protocol
    check_limits(config)  # before anything sized by these settings is built
    if p.iteration_mode not in ITERATION_MODES:
        raise ConfigError(f"protocol.iteration_mode must be one of {ITERATION_MODES}")
    if p.clip_vote not in CLIP_VOTES:
        raise ConfigError(f"protocol.clip_vote must be one of {CLIP_VOTES}")
    if p.folds < 2:
        raise ConfigError("protocol.folds must be >= 2")
    for name, spec in config.datasets.items():
        if spec.n_folds is not None and spec.n_folds < 2:
            raise ConfigError(f"datasets.{name}.n_folds must be >= 2 or null")
        if spec.soft_labels:
            _check_soft_labels(config, name)
    for key in ("iterations", "eval_every"):
        if getattr(p, key) < 1:
            raise ConfigError(f"protocol.{key} must be >= 1")
    for key in ("source_generations", "destination_generations"):
        value = getattr(p, key)
        if value is not None and value < 1:
            raise ConfigError(f"protocol.{key} must be >= 1 or null")
    if config.device not in ("auto", "cpu", "cuda") and not config.device.startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got {short_repr(config.device)}")
    if config.executor.kind not in EXECUTOR_KINDS:
        raise ConfigError(
            f"executor.kind {short_repr(config.executor.kind)} unknown (available: {', '.join(EXECUTOR_KINDS)})"
        )
    if config.executor.cut not in (None, *CUTS):
        raise ConfigError(
            f"executor.cut must be null or one of {CUTS}, got {short_repr(config.executor.cut)}"
        )
    if config.executor.retries < 0:
        raise ConfigError("executor.retries must be >= 0")
    for key in ("connect_timeout", "worker_timeout"):
        value = getattr(config.executor, key)
        if not isinstance(value, int | float) or not 0 < value <= 7 * 86400:
            raise ConfigError(f"executor.{key} must be seconds in (0, 604800], got {value!r}")
    if config.evolution.get("fitness") == "heldout":
        raise ConfigError(
            "evolution.fitness=heldout is not supported by the experiment protocol: it would "
            "need a validation split carved from each fold's training subjects; use train"
        )
    if config.save_models not in ("best", "all", "none"):
        raise ConfigError(
            f"save_models must be best, all or none, got {short_repr(config.save_models)}"
        )
    if not config.sets:
        raise ConfigError("the config defines no experiment sets (key: sets)")
    for i, s in enumerate(config.sets):
        _normalise_chain(s, i)
    _check_names(config)
    for name, spec in config.datasets.items():
        if spec.union:
            check_union(config, name)
    for i, s in enumerate(config.sets):
        check_shared_people(config, s, i)
    inputs = _check_stages(config)
    names = set()
    for i, s in enumerate(config.sets):
        for j, ds in enumerate(s.chain):
            if ds not in config.datasets:
                raise ConfigError(
                    f"sets[{i}].chain[{j}]: dataset {ds!r} is not defined under datasets "
                    f"(defined: {', '.join(config.datasets) or 'none'})"
                )
        if len(s.chain) > 2 and p.iteration_mode == "chained":
            raise ConfigError(
                f"sets[{i}] is a chain of {len(s.chain)} datasets: protocol.iteration_mode "
                "chained (iterations as links on one destination) works with two-link sets "
                "only; use iteration_mode repeat"
            )
        if s.name in names:
            raise ConfigError(f"two experiment sets are named {s.name!r}")
        names.add(s.name)

    for name, spec in config.datasets.items():
        if spec.union:
            continue
        if not spec.adapter:
            raise ConfigError(
                f"datasets.{name} needs an adapter (known: {', '.join(ADAPTERS)}) or a "
                "union: [other, datasets]"
            )
        if spec.adapter not in ADAPTERS:
            raise ConfigError(
                f"datasets.{name}.adapter: {short_repr(spec.adapter)} unknown; known: {', '.join(ADAPTERS)}"
            )
    check_memory(config, inputs)  # the largest job against this machine's memory


def _check_soft_labels(config: ExperimentConfig, name: str) -> None:
    """Soft labels need an adapter that ships votes, conv modules (their SGD takes
    targets) and no union around them (a union pools crops, not votes)."""

    spec = config.datasets[name]
    if spec.union:
        raise ConfigError(f"datasets.{name}.soft_labels: not supported on a union")
    if not hasattr(ADAPTERS.get(spec.adapter), "votes"):
        raise ConfigError(
            f"datasets.{name}.soft_labels: adapter {spec.adapter!r} ships no annotator votes "
            "(ferplus does)"
        )
    if config.pathnet.get("module") not in ("conv", "block"):
        raise ConfigError(
            f"datasets.{name}.soft_labels: needs conv modules or block modules (pathnet.module)"
        )
    for other, other_spec in config.datasets.items():
        if name in other_spec.union:
            raise ConfigError(
                f"datasets.{name}.soft_labels: {name} is a member of union {other!r}, which "
                "pools crops without votes"
            )


def _normalise_chain(s: SetSpec, i: int) -> None:
    """Fill ``chain``, ``source``, ``destination`` and ``name`` from whichever form was given."""
    if s.chain:
        if len(s.chain) < 2:
            raise ConfigError(f"sets[{i}].chain needs at least two datasets, got {s.chain}")
        for role, value, expect in (
            ("source", s.source, s.chain[0]),
            ("destination", s.destination, s.chain[-1]),
        ):
            if value and value != expect:
                raise ConfigError(
                    f"sets[{i}]: {role} {value!r} disagrees with chain {s.chain}; give the "
                    "chain alone"
                )
        s.source, s.destination = s.chain[0], s.chain[-1]
    else:
        missing = [r for r in ("source", "destination") if not getattr(s, r)]
        if missing:
            raise ConfigError(
                f"sets[{i}] needs a source and a destination, or a chain: [a, b, ...] "
                f"(missing: {', '.join(missing)})"
            )
        s.chain = [s.source, s.destination]
    s.chain = list(s.chain)
    s.name = s.name or "->".join(s.chain)


def _check_stages(config: ExperimentConfig) -> dict[str, tuple[int, Any]]:
    """Build every stage's settings as a run would, so that a value the run would refuse
    (in a worker, after the run directory exists) is refused now, before anything is
    written: evolution, PathNet and face settings, executor counts, input sizes of sets.
    Returns each dataset's input (width, image shape or None) for the memory estimate."""

    def build(what: str, make: Any) -> Any:
        try:
            return make()
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{what}: {err}") from None

    evolution = build("evolution", lambda: EvolutionConfig.from_dict(config.evolution))
    if evolution.generations < 1:
        raise ConfigError("evolution.generations must be >= 1 (0 would export untrained models)")
    faces = {
        name: build(
            f"datasets.{name}.faces" if spec.faces else "faces",
            lambda spec=spec: FaceSettings.from_dict({**config.faces, **spec.faces}),
        )
        for name, spec in config.datasets.items()
    }
    for name, spec in config.datasets.items():
        if spec.union:  # what a model trained on the union records: one setting for all
            first, *rest = spec.union
            for member in rest:
                if faces[member] != faces[first]:
                    raise ConfigError(
                        f"datasets.{name}.union: {first} and {member} have different face "
                        f"settings ({_differences(faces[first], faces[member])}); a pooled "
                        "dataset needs one, as the model trained on it records one"
                    )
            faces[name] = faces[first]
    if not faces:
        faces["faces"] = build("faces", lambda: FaceSettings.from_dict(config.faces))
    inputs: dict[str, tuple[int, Any]] = {}
    for key, face in faces.items():
        channels = 3 if face.colour == "rgb" else 1
        dim = int(face.size) ** 2 * channels
        shape = (
            {"image_shape": (int(face.size), int(face.size), channels)}
            if config.pathnet.get("module") in ("conv", "block")
            else {}
        )
        build(
            "pathnet",
            lambda dim=dim, shape=shape: PathNetConfig(input_dim=dim, **shape, **config.pathnet),
        )
        inputs[key] = (dim, shape.get("image_shape"))
    e = config.executor
    for key, low in (("workers", 0), ("threads", 1), ("checkpoint_every", 1)):
        value = getattr(e, key)
        if value < low:
            raise ConfigError(f"executor.{key} must be >= {low}, got {value}")
    for i, s in enumerate(config.sets):
        for prev, nxt in zip(s.chain, s.chain[1:], strict=False):
            a, b = faces.get(prev), faces.get(nxt)
            if a is not None and b is not None and (a.size, a.colour) != (b.size, b.colour):
                raise ConfigError(
                    f"sets[{i}] ({prev} -> {nxt}): {prev} crops are "
                    f"{a.size}x{a.size} {a.colour} but {nxt} crops {b.size}x{b.size} "
                    f"{b.colour}; a transferred path needs one input size: use the same "
                    "faces.size and faces.colour for every dataset of a chain"
                )
    return inputs


def _differences(a: Any, b: Any) -> str:
    """``key a/b`` for every field two dataclass values disagree on."""
    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    return ", ".join(f"{k} {da[k]!r}/{db[k]!r}" for k in da if da[k] != db[k])


NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
"""An experiment's name is its default run directory ``runs/<name>``: one plain folder name."""


def _check_names(config: ExperimentConfig) -> None:
    """``name`` is a simple slug (never ``..``, a path or empty); set names map to
    distinct file names (job ids, model folders), else one set would silently replace
    another's outputs."""

    if not isinstance(config.name, str) or not re.fullmatch(NAME_PATTERN, config.name):
        raise ConfigError(
            f"name {short_repr(config.name)} must be a simple folder name: letters, digits, '_', '.', "
            "'-', starting with a letter or digit (it names the run directory runs/<name>)"
        )

    seen: dict[str, str] = {}
    for s in config.sets:
        name = s.name
        key = slug(name)
        if not key:
            raise ConfigError(f"experiment set name {name!r} has no letters or digits")
        if key in seen and seen[key] != name:
            raise ConfigError(
                f"experiment sets {seen[key]!r} and {name!r} share the file name {key!r} "
                "(job ids, model folders); rename one"
            )
        seen[key] = name
