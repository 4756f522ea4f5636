"""The one-dataset study config ``pathnet-fer evaluate`` and a study's cross-dataset table
crop a dataset with: a dataset of an experiment config, or an adapter / shared-data folder
cropped with a model's own face settings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pathnet_fer.data.registry import ADAPTERS, UnknownDatasetError, get_adapter
from pathnet_fer.experiments.config import (
    ExperimentConfig,
    apply_overrides,
    build_config,
    load_raw,
)
from pathnet_fer.scoring.on_faces import EvaluationError


def dataset_config(
    name: str,
    model: Any,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    root: str | Path | None = None,
    keep_neutral: bool = False,
) -> ExperimentConfig:
    """The ``ExperimentConfig`` that defines dataset ``name``.

    With ``config``: that config (``--set`` overrides applied); ``name`` must be one of
    its ``datasets:``. Without: a one-dataset config whose ``name`` is an adapter
    (``crema-d``) or its shared-data folder (``crema-d-sample``), cropped with the
    model's own face settings (detection as the dataset needs).
    """
    extra = []
    if root is not None:
        extra.append(f"datasets.{name}.root={json.dumps(str(Path(root).expanduser()))}")
    if keep_neutral:
        extra.append(f"datasets.{name}.keep_neutral=true")
    if config is not None:
        raw = load_raw(config)
        defined = list(raw.get("datasets") or {})
        if name not in defined:
            raise EvaluationError(
                f"dataset {name!r} is not defined under datasets: in {config} "
                f"(defined: {', '.join(defined) or 'none'})"
            )
    else:
        adapter = _adapter_for(name)
        if root is None and adapter.default_folder is None:
            raise EvaluationError(
                f"{adapter.name} has no copy under the shared data root: give its folder "
                f"with --root DIR (layout: {adapter.layout})"
            )
        faces = {**model.face_settings.to_dict(), "detect": None}
        raw = {
            "name": "evaluate",
            "datasets": {name: {"adapter": adapter.name, "root": adapter.default_folder or ""}},
            "faces": faces,
            "sets": [{"source": name, "destination": name}],
            "save_models": "none",
        }
    return build_config(apply_overrides(raw, [*overrides, *extra]))


def _adapter_for(name: str) -> Any:
    """An adapter by name or alias (``crema-d``, ``ckplus``) or by its shared-data
    folder (``crema-d-sample``)."""
    for adapter in ADAPTERS.values():
        if adapter.default_folder and adapter.default_folder == name:
            return adapter
    try:
        return get_adapter(name)
    except UnknownDatasetError as err:
        folders = [a.default_folder for a in ADAPTERS.values() if a.default_folder]
        raise EvaluationError(
            f"{err} (or a shared-data folder: {', '.join(folders)}); datasets of an "
            "experiment config: --config CFG"
        ) from None
