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

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pathnet_fer.experiments.limits import short_repr
from pathnet_fer.paths import REPO_ROOT, data_root

CONFIG_DIR = REPO_ROOT / "configs"
ITERATION_MODES = ("repeat", "chained")
CLIP_VOTES = ("majority", "mean_proba")
FOLD_KINDS = ("subjects", "clips", "fixed", "holdout")
EXECUTOR_KINDS = ("local", "inline", "dask")
CUTS = ("set", "fold", "run")


class ConfigError(ValueError):
    """A configuration problem, with the offending key in the message (at most
    ``MAX_MESSAGE`` characters: a message never carries an unbounded value)."""

    MAX_MESSAGE = 2_000

    def __init__(self, message: str = "") -> None:
        message = str(message)
        if len(message) > self.MAX_MESSAGE:
            cut = len(message) - self.MAX_MESSAGE
            message = f"{message[: self.MAX_MESSAGE]}... ({cut:,} more characters)"
        super().__init__(message)


@dataclass
class DatasetSpec:
    """One dataset: which adapter reads it and where it lives, or a union of others."""

    adapter: str = ""  # required unless ``union`` is given
    root: str = ""  # relative to the data root, or absolute; "" = the adapter's name
    keep_neutral: bool = False
    # subjects: grouped by subject (honest) | clips: grouped by clip only (subjects leak;
    # for datasets with too few subjects) | fixed: the dataset's own train/test split |
    # holdout: one seeded, stratified, subject-grouped split holding out ``holdout`` of it
    folds: str = "subjects"
    holdout: float = 0.2  # folds: holdout only; the held-out share, 1/k (0.2 = 1 of 5)
    # only these of the adapter's shipped splits (its ``split`` column), e.g. [test] to
    # keep FER-2013's test faces only (added when the shared training split was a blurred
    # copy; it is sharp now); [] = all
    splits: list[str] = field(default_factory=list)
    n_folds: int | None = None  # None = protocol.folds (e.g. 4 for SAVEE's 4 speakers)
    faces: dict[str, Any] = field(default_factory=dict)  # overrides of the global face settings
    # A pooled dataset: the crops of these other datasets in one training set (subjects
    # and clips prefixed ``<member>/``, so folds never mix two datasets' people). Members
    # keep their own adapter, root, splits and face settings (which must agree); the
    # union's own are its folds, holdout and n_folds.
    union: list[str] = field(default_factory=list)
    # Train on the annotators' vote distribution (soft targets) instead of the majority
    # label, for adapters that ship votes (ferplus); accuracy still counts the majority.
    soft_labels: bool = False


# DatasetSpec fields added after run directories were written: left out of a saved
# config while at their default, so those run directories still resume.
DATASET_LATER_FIELDS = {"soft_labels": False}


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
    def resolved_data_root(self) -> Path:
        return Path(self.data_root).expanduser().resolve() if self.data_root else data_root()

    def members(self, name: str) -> list[str]:
        """The datasets whose crops make ``name``: a union's members, else ``[name]``."""
        return list(self.datasets[name].union) or [name]

    def dataset_root(self, name: str) -> Path:
        spec = self.datasets[name]
        if spec.union:
            raise ValueError(f"dataset {name!r} is a union of {spec.union}: it has no folder")
        root = Path(spec.root or spec.adapter).expanduser()
        return root if root.is_absolute() else self.resolved_data_root() / root

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


# ---------------------------------------------------------------------- type checking
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` converted to ``tp`` where lossless (int -> float), else raise."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(
            f"{where}: {short_repr(value)} is not {' or '.join(map(_type_name, args))}"
        )
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {short_repr(value)}")
        _, vt = typing.get_args(tp)
        return {str(k): _check(v, vt, f"{where}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {short_repr(value)}")
        (vt, *_) = typing.get_args(tp) or (Any,)
        return [_check(v, vt, f"{where}[{i}]") for i, v in enumerate(value)]
    if typing.get_origin(tp) is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {short_repr(value)} not one of {typing.get_args(tp)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {short_repr(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {short_repr(value)}")
        return value
    if tp is float:
        value = _yaml11_float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {short_repr(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {short_repr(value)}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {short_repr(value)}")
        return value
    return value


def _hints(cls: type) -> dict[str, Any]:
    module = __import__(cls.__module__, fromlist=["_"])
    return typing.get_type_hints(cls, globalns=vars(module))


def _from_dict(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {short_repr(data)}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)}; "
            f"known keys{' of ' + where if where else ''}: {', '.join(names)}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _check(data[f.name], hints[f.name], f"{where}.{f.name}".lstrip("."))
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where or 'config'}: {err}") from err


def _check_section(values: dict[str, Any], cls: type, where: str, skip=()) -> dict[str, Any]:
    """Validate a foreign stage's settings against its dataclass; return them with defaults."""
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    unknown = sorted(set(values) - set(names))
    if unknown:
        msg = f"unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; known: {', '.join(names)}"
        derived = [k for k in unknown if k in skip]
        if derived:
            msg += f" ({', '.join(derived)} is derived by the experiment, not set)"
        raise ConfigError(msg)
    out = {}
    later = getattr(cls, "LATER_FIELDS", ())  # at their default: absent, as in older run dirs
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if f.name in later and values.get(f.name, f.default) == f.default:
            continue
        if f.name in values:
            out[f.name] = _check(values[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return _plain(out)


def _plain(value: Any) -> Any:
    """Tuples -> lists, enums -> values: YAML-safe, round-trippable."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and type(value).__module__ != "builtins":
        return value.value
    return value


def _foreign_classes() -> dict[str, tuple[type, tuple[str, ...]]]:
    from pathnet_fer.evolution.config import EvolutionConfig
    from pathnet_fer.faces.settings import FaceSettings
    from pathnet_fer.pathnet.config import PathNetConfig

    return {
        "faces": (FaceSettings, ()),
        "pathnet": (PathNetConfig, ("input_dim", "image_shape")),
        "evolution": (EvolutionConfig, ()),
    }


# ---------------------------------------------------------------------- loading
def find_config(name_or_path: str | Path) -> Path:
    """A config path as given, else ``configs/<name>[.yaml]`` of the checkout."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():  # not "not found": it is there, and it is the wrong kind of thing
        inside = sorted(p.name for p in path.glob("*.yaml"))[:5]
        hint = f" (YAML files in it: {', '.join(inside)})" if inside else ""
        raise ConfigError(f"config {str(path)!r} is a directory, not a YAML file{hint}")
    for candidate in (CONFIG_DIR / path, CONFIG_DIR / f"{path}.yaml"):
        if candidate.is_file():
            return candidate.resolve()
    shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))) or "none"
    raise ConfigError(f"config {str(name_or_path)!r} not found (shipped configs: {shipped})")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config, following ``extends:`` chains (at most ``MAX_EXTENDS_DEPTH``
    configs; files of at most ``MAX_CONFIG_BYTES`` and ``MAX_CONFIG_VALUES`` values)."""
    from pathnet_fer.experiments.limits import MAX_CONFIG_BYTES, MAX_EXTENDS_DEPTH, count_values

    path = find_config(path)
    if path in _seen:
        raise ConfigError(f"config extends itself in a loop: {' -> '.join(map(str, _seen))}")
    if len(_seen) >= MAX_EXTENDS_DEPTH:
        raise ConfigError(
            f"{_seen[0]}: its extends: chain is more than {MAX_EXTENDS_DEPTH} configs deep "
            f"(at {path}); flatten it"
        )
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: {size:,} bytes is no config (at most {MAX_CONFIG_BYTES:,} bytes)"
            )
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {_short_text(err)}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    count_values(data, str(path))
    parent = data.pop("extends", None)
    if parent:
        data = _merge(load_raw(_parent_config(str(parent), path), (*_seen, path)), data)
    return data


def _short_text(value: object, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parent_config(parent: str, child: Path) -> Path:
    """``extends:`` target: relative to the extending config (with or without ``.yaml``),
    else a shipped config of that name (``extends: demo`` works from any folder)."""
    target = Path(parent).expanduser()
    if target.is_absolute():
        return target
    for folder in (child.parent, CONFIG_DIR):
        for candidate in (folder / target, folder / f"{target}.yaml"):
            if candidate.is_file() and candidate.resolve() != child.resolve():
                return candidate
    raise ConfigError(
        f"{child}: extends {parent!r}, found neither beside it ({child.parent}) nor "
        f"among the shipped configs ({CONFIG_DIR})"
    )


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"evolution.generations=200"`` -> (["evolution", "generations"], 200)."""
    if "=" not in text:
        raise ConfigError(f"override {short_repr(text)} must look like key.sub=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {short_repr(text)} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(
            f"override {short_repr(text)}: value is not valid YAML: {_short_text(err)}"
        ) from None
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw config mapping (validation happens on build)."""
    from pathnet_fer.experiments.limits import count_values

    raw = copy.deepcopy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                node = node[_list_index(node, part, where)]
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"override {short_repr(text)}: {where} is a value, not a section")
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(node, last, ".".join(parts))] = value
        else:
            node[last] = value
    count_values(raw, "the config with its --set overrides")
    return raw


def _list_index(node: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"{where}: list index must be 0..{len(node) - 1}, got {part!r}")
    return int(part)


def build_config(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a raw mapping into an ``ExperimentConfig`` (foreign sections with defaults)."""
    from pathnet_fer.experiments.limits import count_values

    count_values(raw, "config")  # before any check walks it (YAML aliases expanded)
    config = _from_dict(ExperimentConfig, raw, "")
    for section, (cls, skip) in _foreign_classes().items():
        setattr(config, section, _check_section(getattr(config, section), cls, section, skip))
    for name, spec in config.datasets.items():
        cls, skip = _foreign_classes()["faces"]
        spec.faces = _check_section_partial(spec.faces, cls, f"datasets.{name}.faces")
        if spec.folds not in FOLD_KINDS:
            raise ConfigError(f"datasets.{name}.folds must be one of {FOLD_KINDS}")
        if not 0.0 < spec.holdout <= 0.5 or abs(1 / spec.holdout - round(1 / spec.holdout)) > 1e-6:
            raise ConfigError(
                f"datasets.{name}.holdout must be 1/k for k >= 2 (0.5, 0.25, 0.2, ...), "
                f"got {spec.holdout}"
            )
        if not all(isinstance(v, str) and v for v in spec.splits):
            raise ConfigError(f"datasets.{name}.splits must be a list of split names")
    from pathnet_fer.experiments.config_checks import validate

    validate(config)
    return config


def _check_section_partial(values: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    full = _check_section(values, cls, where)
    return {k: full[k] for k in values}


_FLOAT = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"


def _yaml11_float(value: Any) -> Any:
    """``1e-2`` is a string to YAML 1.1 (PyYAML); as a number setting it means 0.01."""
    import re

    if isinstance(value, str) and re.fullmatch(_FLOAT, value.strip()):
        return float(value)
    return value


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load, merge ``extends``, apply overrides, validate."""
    return build_config(apply_overrides(load_raw(path), list(overrides or [])))
