"""A study's config built once: YAML (``yaml_config``) -> ``ExperimentConfig`` (the schema,
``config.py``) -> every cross-section check (``config_checks.py``).

The face, PathNet and evolution sections are checked against the dataclasses of the
stages that own them (``FaceSettings``, ``PathNetConfig``, ``EvolutionConfig``) and
stored with their defaults, so a typo fails before hours of compute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pathnet_fer.datasets.spec import check_dataset_specs
from pathnet_fer.evolution.config import EvolutionConfig
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.config_checks import validate
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.pathnet.config import PathNetConfig
from pathnet_fer.yaml_config.bounds import count_values
from pathnet_fer.yaml_config.files import apply_overrides, load_raw
from pathnet_fer.yaml_config.typed import check_section, from_dict


def _foreign_classes() -> dict[str, tuple[type, tuple[str, ...]]]:
    return {
        "faces": (FaceSettings, ()),
        "pathnet": (PathNetConfig, ("input_dim", "image_shape")),
        "evolution": (EvolutionConfig, ()),
    }


def build_config(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a raw mapping into an ``ExperimentConfig`` (foreign sections with defaults)."""
    count_values(raw, "config")  # before any check walks it (YAML aliases expanded)
    config = from_dict(ExperimentConfig, raw, "")
    for section, (cls, skip) in _foreign_classes().items():
        setattr(config, section, check_section(getattr(config, section), cls, section, skip))
    check_dataset_specs(config.datasets)
    validate(config)
    return config


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load, merge ``extends``, apply overrides, validate."""
    return build_config(apply_overrides(load_raw(path), list(overrides or [])))
