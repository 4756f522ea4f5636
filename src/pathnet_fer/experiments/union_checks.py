"""Checks of pooled datasets (``datasets.NAME.union``), run while a config is validated:
a union's members, what it may set itself, and sets whose links share people through one."""

from __future__ import annotations

import itertools

from pathnet_fer.data.registry import get_adapter
from pathnet_fer.experiments.config import ConfigError, ExperimentConfig, SetSpec


def check_union(config: ExperimentConfig, name: str) -> None:
    """A union names at least two distinct plain datasets of one label space (classes
    follow ``keep_neutral``) and sets nothing its members own."""
    spec, where = config.datasets[name], f"datasets.{name}.union"
    if len(set(spec.union)) < 2 or len(set(spec.union)) != len(spec.union):
        raise ConfigError(f"{where} needs two or more distinct datasets, got {spec.union}")
    for member in spec.union:
        if member not in config.datasets or member == name:
            raise ConfigError(
                f"{where}: {member!r} is not another dataset defined under datasets "
                f"(defined: {', '.join(n for n in config.datasets if n != name)})"
            )
        if "/" in member:  # members are told apart by the "<member>/" subject prefix
            raise ConfigError(f"{where}: a member's name may not hold '/', got {member!r}")
        if config.datasets[member].union:
            raise ConfigError(f"{where}: {member!r} is a union itself; list its members")
    neutral = [m for m in spec.union if config.datasets[m].keep_neutral]
    if neutral and len(neutral) != len(spec.union):
        others = [m for m in spec.union if m not in neutral]
        raise ConfigError(
            f"{where}: members differ in classes: {', '.join(neutral)} keep neutral (7 "
            f"classes), {', '.join(others)} not (6); a union needs one label space: set "
            f"keep_neutral alike on {', '.join(f'datasets.{m}' for m in spec.union)}"
        )
    owned = {"adapter": "", "root": "", "keep_neutral": False, "splits": [], "faces": {}}
    for key, default in owned.items():
        if getattr(spec, key) != default:
            raise ConfigError(
                f"datasets.{name}.{key}: a union takes its members' {key}; set it on "
                f"{', '.join(f'datasets.{m}' for m in spec.union)}"
            )
    if spec.folds == "fixed":
        raise ConfigError(
            f"datasets.{name}.folds: fixed needs a shipped train/test split, which a union "
            "has not; use subjects (default), clips or holdout"
        )


def check_shared_people(config: ExperimentConfig, s: SetSpec, i: int) -> None:
    """Two links of a set that share a dataset through a union (``ckplus48`` and
    ``union: [ckplus48, jaffe]``) pair fold k with fold k, which keeps a fold's held-out
    people out of both only when both make the shared member's folds alike: by subject,
    with one fold count."""
    links = [d for d in dict.fromkeys(s.chain) if d in config.datasets]
    for a, b in itertools.combinations(links, 2):
        if not (config.datasets[a].union or config.datasets[b].union):
            continue
        shared = sorted(set(config.members(a)) & set(config.members(b)))
        if not shared:
            continue
        kinds = {config.datasets[a].folds, config.datasets[b].folds}
        if kinds != {"subjects"} or config.n_folds(a) != config.n_folds(b):
            raise ConfigError(
                f"sets[{i}]: {a} and {b} share {', '.join(shared)}; a link would train on "
                f"people the other holds out unless both use folds: subjects and one fold "
                f"count (now {config.datasets[a].folds}/{config.n_folds(a)} and "
                f"{config.datasets[b].folds}/{config.n_folds(b)})"
            )


def check_union_files(config: ExperimentConfig) -> None:
    """Refuse (``ConfigError``) members of one union that read the same files: the pool
    would hold those faces twice, and as each member is split into folds on its own, a
    face could be trained on through one member and tested on through the other.

    Compared on the files the adapters list (resolved paths, after ``splits`` and
    ``keep_neutral``), not on names or roots: ``fer2013`` with ``splits: [test]`` and
    plain ``fer2013`` share the test split's files. Only the members of the unions the
    sets use are listed (no media is decoded), so this runs in a dry run too.
    """
    files: dict[str, dict[str, str]] = {}

    def of(member: str) -> dict[str, str]:
        if member not in files:
            files[member] = _listed_files(config, member)
        return files[member]

    for name in dict.fromkeys(d for s in config.sets for d in s.chain):
        for a, b in itertools.combinations(config.datasets[name].union, 2):
            shared = of(a).keys() & of(b).keys()
            if shared:
                raise ConfigError(
                    f"datasets.{name}.union: members {a} and {b} read the same "
                    f"{len(shared):,} file(s) (e.g. {of(a)[min(shared)]}): the union would "
                    "hold those faces twice, and a face could be trained on in one member "
                    "and tested on in the other; give the members disjoint files (other "
                    "roots or splits)"
                )


def _listed_files(config: ExperimentConfig, name: str) -> dict[str, str]:
    """A plain dataset's files as its adapter lists them: resolved path -> path."""
    import os

    spec = config.datasets[name]
    root = config.dataset_root(name)
    if not root.is_dir():
        return {}  # check_data names it
    samples = get_adapter(spec.adapter).scan(root, keep_neutral=spec.keep_neutral).samples
    if spec.splits:
        samples = samples[samples["split"].astype(str).isin(spec.splits)]
    return {os.path.realpath(p): str(p) for p in samples["path"].astype(str)}
