"""What a dataset is to the pipeline: a ``datasets:`` entry of a config, and the catalog of
them that loading needs (where each lives, how it is cropped, where crops are cached).

Both a study's ``ExperimentConfig`` and ``pathnet-fer evaluate``'s one-dataset
definitions are catalogs; loading (``datasets.loading``) takes either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.paths import data_root
from pathnet_fer.yaml_config.errors import ConfigError
from pathnet_fer.yaml_config.typed import check_section, check_section_partial, from_dict

FOLD_KINDS = ("subjects", "clips", "fixed", "holdout")


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


class DatasetSource(Protocol):
    """What loading reads of a config (``ExperimentConfig`` and ``DatasetCatalog`` both)."""

    datasets: Mapping[str, DatasetSpec]
    faces: Mapping[str, Any]
    cache_dir: str | None

    def members(self, name: str) -> list[str]: ...

    def dataset_root(self, name: str) -> Path: ...


@dataclass
class DatasetCatalog:
    """Datasets by name, the global face settings, the data root and the crop cache:
    the part of a config that says where faces come from."""

    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    faces: dict[str, Any] = field(default_factory=dict)  # FaceSettings fields
    data_root: str | None = None  # None = pathnet_fer.paths.data_root()
    cache_dir: str | None = None  # None = pathnet_fer.paths.cache_root()

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


def check_dataset_specs(datasets: Mapping[str, DatasetSpec]) -> None:
    """Each entry's own settings (its face overrides checked, and left partial, as given):
    folds kind, holdout share, split names. ``ConfigError`` names the key."""
    for name, spec in datasets.items():
        spec.faces = check_section_partial(spec.faces, FaceSettings, f"datasets.{name}.faces")
        if spec.folds not in FOLD_KINDS:
            raise ConfigError(f"datasets.{name}.folds must be one of {FOLD_KINDS}")
        if not 0.0 < spec.holdout <= 0.5 or abs(1 / spec.holdout - round(1 / spec.holdout)) > 1e-6:
            raise ConfigError(
                f"datasets.{name}.holdout must be 1/k for k >= 2 (0.5, 0.25, 0.2, ...), "
                f"got {spec.holdout}"
            )
        if not all(isinstance(v, str) and v for v in spec.splits):
            raise ConfigError(f"datasets.{name}.splits must be a list of split names")


def catalog_from_raw(raw: Mapping[str, Any], ignored: Sequence[str] = ()) -> DatasetCatalog:
    """The catalog of a raw config mapping (a file with its ``--set`` overrides): its
    ``datasets``, ``faces``, ``data_root`` and ``cache_dir`` checked; top-level keys in
    ``ignored`` (a study's other sections) skipped, any other refused."""
    known = ("datasets", "faces", "data_root", "cache_dir")
    unknown = sorted(set(raw) - set(known) - set(ignored))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")
    wanted = {k: raw[k] for k in known if k in raw}
    catalog = from_dict(DatasetCatalog, wanted, "")
    catalog.faces = check_section(catalog.faces, FaceSettings, "faces")
    check_dataset_specs(catalog.datasets)
    return catalog
