"""Experiment configuration: YAML files -> typed dataclasses, with checked overrides.

Every setting has a default here (and is documented in docs/experiments.md); a YAML file
states only what differs. ``extends: other.yaml`` merges a file over another (demo.yaml is
a short ckplus-jaffe.yaml). ``--set a.b=c`` overrides any key without editing files; values
are parsed as YAML and type-checked, unknown keys are refused with the list of known ones.
The face, PathNet and evolution sections are checked against the dataclasses of the stages
that own them (``FaceSettings``, ``PathNetConfig``, ``EvolutionConfig``), so a typo fails
before hours of compute rather than being ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pathnet_fer.datasets.spec import (
    DATASET_LATER_FIELDS,
    DatasetCatalog,
    DatasetSpec,
)
from pathnet_fer.yaml_config.errors import ConfigError
from pathnet_fer.yaml_config.files import CONFIG_DIR, apply_overrides, find_config, load_raw

__all__ = [  # ConfigError, CONFIG_DIR and the file functions: here too for every caller
    "CONFIG_DIR",
    "ConfigError",
    "ExperimentConfig",
    "apply_overrides",
    "find_config",
    "load_raw",
]
ITERATION_MODES = ("repeat", "chained")
CLIP_VOTES = ("majority", "mean_proba")
EXECUTOR_KINDS = ("local", "inline", "dask")
CUTS = ("set", "fold", "run")


@dataclass
class SetSpec:
    """One experiment set: a chain of tasks, each link transferring from the ones before
    (transfer arm) and every link after the first also evolved from scratch.

    ``source``/``destination`` is the two-link chain; ``chain: [a, b, c]`` any length.
    After validation ``chain`` always holds every link and ``source``/``destination`` its
    first and last.
    """

    source: str = ""
    destination: str = ""
    name: str = ""  # default "<link1>-><link2>->..."
    chain: list[str] = field(default_factory=list)

    @property
    def links(self) -> list[str]:
        return list(self.chain) if self.chain else [self.source, self.destination]


@dataclass
class ProtocolSpec:
    """How sets are run: folds, iterations, budgets, held-out checks."""

    folds: int = 6
    iterations: int = 4
    # repeat: independent repetitions with different seeds (default).
    # chained: iteration i's trained destination is the source of iteration i+1.
    iteration_mode: str = "repeat"
    source_generations: int | None = None  # None = evolution.generations
    destination_generations: int | None = None  # None = evolution.generations
    eval_every: int = 50  # held-out check every K generations (and always at the end)
    clip_vote: str = "majority"  # majority | mean_proba
    stratify: bool = True  # stratify folds by emotion where class counts allow
    max_source_frames: int | None = None  # cap on source training samples (None = all)
    # Reuse a source unit's artifact from the shared store (<cache>/sources/) when one with
    # the same key (data, rows, settings, seed) exists: other studies' sources are reused.
    reuse_sources: bool = True
    # After cross-validation, fit every set once more on ALL subjects of every link (the
    # model a user deploys: models/<set>/final.pt); it has no held-out figure of its own.
    final_fit: bool = True


@dataclass
class ExecutorSpec:
    """Where runs execute. ``local``: this machine, batched runs over worker processes."""

    kind: str = "local"  # local | inline | dask (docs/cluster.md)
    workers: int = 0  # processes; 0 = one per CPU core
    threads: int = 1  # torch threads per worker
    batch_runs: bool = True  # folds x iterations of a set share one batched PathNet
    checkpoint_every: int = 100  # generations between checkpoints (resume granularity)
    # None: jobs as batch_runs says. set | fold | run: every run evolves alone, seeded by
    # its own identity, in jobs of a set and arm, of a fold, or of one run: the same
    # metrics whatever the cut (experiments/cuts.py).
    cut: str | None = None
    address: str | None = None  # dask: a running scheduler (tcp://host:8786)
    scheduler_file: str | None = None  # dask: a scheduler's --scheduler-file JSON
    retries: int = 2  # dask: restarts of a job whose worker was lost (its own errors: none)
    # dask, a running scheduler: seconds to wait for its scheduler file and connection,
    # then for a first worker, before one line says what is wrong (dask_connect.py)
    connect_timeout: float = 60.0
    worker_timeout: float = 300.0


@dataclass
class LoggingSpec:
    """Where evolution events go besides metrics.csv."""

    progress: bool = True  # tqdm bars: one per job and one overall
    console_every: int = 0  # print a line every N generations (0 = off)
    tensorboard: bool = False  # needs the tensorboard package


@dataclass
class ExperimentConfig:
    """A whole study: datasets, sets, and the settings of every stage."""

    name: str = "experiment"
    seed: int = 0
    device: str = "auto"  # auto (cuda when present) | cpu | cuda
    data_root: str | None = None  # None = pathnet_fer.paths.data_root()
    cache_dir: str | None = None  # None = pathnet_fer.paths.cache_root()
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    sets: list[SetSpec] = field(default_factory=list)
    faces: dict[str, Any] = field(default_factory=dict)  # FaceSettings fields
    pathnet: dict[str, Any] = field(default_factory=dict)  # PathNetConfig fields (no input_dim)
    evolution: dict[str, Any] = field(default_factory=dict)  # EvolutionConfig fields
    protocol: ProtocolSpec = field(default_factory=ProtocolSpec)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)
    logging: LoggingSpec = field(default_factory=LoggingSpec)
    # best: per set and arm, the run whose best path scored highest on its own training
    # selection data (never the test subjects) | all: every run | none
    save_models: str = "best"
    # settings of `pathnet-fer baseline` (docs/baselines.md); the PathNet protocol ignores them
    baselines: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- derived values
    @property
    def catalog(self) -> DatasetCatalog:
        """The datasets part of the config (what loading needs)."""
        return DatasetCatalog(self.datasets, self.faces, self.data_root, self.cache_dir)

    def resolved_data_root(self) -> Path:
        return self.catalog.resolved_data_root()

    def members(self, name: str) -> list[str]:
        """The datasets whose crops make ``name``: a union's members, else ``[name]``."""
        return self.catalog.members(name)

    def dataset_root(self, name: str) -> Path:
        return self.catalog.dataset_root(name)

    def n_folds(self, dataset: str) -> int:
        """Fold count of a dataset (its own setting, else the protocol's)."""
        spec = self.datasets[dataset]
        if spec.folds in ("fixed", "holdout"):
            return 1
        return spec.n_folds if spec.n_folds is not None else self.protocol.folds

    def generations(self, role: str) -> int:
        """Generation budget of the ``source`` or ``destination`` task."""
        value = (
            self.protocol.source_generations
            if role == "source"
            else self.protocol.destination_generations
        )
        return int(value if value is not None else self.evolution["generations"])

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for spec in out["datasets"].values():
            for key, default in DATASET_LATER_FIELDS.items():
                if spec.get(key) == default:
                    del spec[key]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)
