"""The datasets ``pathnet-fer evaluate`` (and a study's cross-dataset table) crop: one
dataset of a config file, or an adapter / shared-data folder cropped with a model's own
face settings, as a ``DatasetCatalog``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pathnet_fer.data.registry import ADAPTERS, UnknownDatasetError, get_adapter
from pathnet_fer.datasets.spec import DatasetCatalog, catalog_from_raw
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.yaml_config.errors import ConfigError
from pathnet_fer.yaml_config.files import apply_overrides, load_raw


def dataset_catalog(
    name: str,
    face_settings: FaceSettings,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    root: str | Path | None = None,
    keep_neutral: bool = False,
) -> DatasetCatalog:
    """The catalog that defines dataset ``name``.

    With ``config``: that config file's datasets (``--set`` overrides applied; its other
    sections are not read); ``name`` must be one of its ``datasets:``. Without: a
    one-dataset catalog whose ``name`` is an adapter (``crema-d``) or its shared-data
    folder (``crema-d-sample``), cropped with ``face_settings`` (a model's own; detection
    as the dataset needs). ``ConfigError`` says what is wrong.
    """
    extra = []
    if root is not None:
        extra.append(f"datasets.{name}.root={json.dumps(str(Path(root).expanduser()))}")
    if keep_neutral:
        extra.append(f"datasets.{name}.keep_neutral=true")
    if config is not None:
        raw = load_raw(config)
        ignored = tuple(raw)  # the study's other sections: not evaluate's business
        defined = list(raw.get("datasets") or {})
        if name not in defined:
            raise ConfigError(
                f"dataset {name!r} is not defined under datasets: in {config} "
                f"(defined: {', '.join(defined) or 'none'})"
            )
    else:
        adapter = _adapter_for(name)
        if root is None and adapter.default_folder is None:
            raise ConfigError(
                f"{adapter.name} has no copy under the shared data root: give its folder "
                f"with --root DIR (layout: {adapter.layout})"
            )
        faces = {**face_settings.to_dict(), "detect": None}
        raw = {
            "datasets": {name: {"adapter": adapter.name, "root": adapter.default_folder or ""}},
            "faces": faces,
        }
        ignored = ()
    return catalog_from_raw(apply_overrides(raw, [*overrides, *extra]), ignored)


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
        raise ConfigError(
            f"{err} (or a shared-data folder: {', '.join(folders)}); datasets of an "
            "experiment config: --config CFG"
        ) from None
