"""All dataset adapters by name: ``get_adapter("jaffe").scan(root)``."""

from __future__ import annotations

import re
from pathlib import Path

from pathnet_fer.data.adapter import DatasetAdapter, DatasetRootError, ScanResult
from pathnet_fer.data.ckplus48 import CKPlus48Adapter
from pathnet_fer.data.crema_d import CremaDAdapter
from pathnet_fer.data.enterface import EnterfaceAdapter
from pathnet_fer.data.fer2013 import Fer2013Adapter
from pathnet_fer.data.ferplus import FerPlusAdapter
from pathnet_fer.data.generic import GenericAdapter
from pathnet_fer.data.jaffe import JaffeAdapter
from pathnet_fer.data.ravdess import RavdessAdapter
from pathnet_fer.data.savee import SaveeAdapter
from pathnet_fer.paths import DATA_ENV, data_root

ADAPTERS: dict[str, DatasetAdapter] = {
    adapter.name: adapter
    for adapter in (
        SaveeAdapter(),
        EnterfaceAdapter(),
        CremaDAdapter(),
        RavdessAdapter(),
        CKPlus48Adapter(),
        JaffeAdapter(),
        Fer2013Adapter(),
        FerPlusAdapter(),
        GenericAdapter(),
    )
}


class UnknownDatasetError(KeyError):
    """No adapter has this name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_ALIASES = {_key(name): name for name in ADAPTERS} | {
    "enterface05": "enterface",
    "ckplus": "ckplus48",
    "ck48": "ckplus48",
    "ck": "ckplus48",
    "fer": "fer2013",
}


def get_adapter(name: str) -> DatasetAdapter:
    """The adapter called ``name`` (case, '-', '_' and "'" ignored: ``CREMA_D`` works)."""
    found = _ALIASES.get(_key(name))
    if found is None:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(ADAPTERS)}"
        )
    return ADAPTERS[found]


def default_root(name: str) -> Path:
    """Where the shared data holds dataset ``name`` (``<data root>/<folder>``).

    Raises ``DatasetRootError`` for datasets users bring themselves (SAVEE, ...).
    """
    adapter = get_adapter(name)
    if adapter.default_folder is None:
        raise DatasetRootError(
            f"{adapter.name} has no copy under the shared data root: pass its folder (--root DIR) "
            f"(layout: {adapter.layout})"
        )
    return data_root() / adapter.default_folder


def scan_dataset(
    name: str, root: str | Path | None = None, keep_neutral: bool = False
) -> ScanResult:
    """Scan dataset ``name`` under ``root`` (default: its shared copy, see ``default_root``)."""
    adapter = get_adapter(name)
    if root is None:
        root = default_root(name)
        if not root.exists():
            raise DatasetRootError(
                f"{adapter.name}: shared copy {root} not found (set ${DATA_ENV} or pass a root)"
            )
    return adapter.scan(root, keep_neutral=keep_neutral)
