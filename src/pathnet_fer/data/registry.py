"""All dataset adapters by name: ``get_adapter("jaffe").scan(root)``."""

from __future__ import annotations

import re

from pathnet_fer.data.adapter import DatasetAdapter
from pathnet_fer.data.ckplus48 import CKPlus48Adapter
from pathnet_fer.data.crema_d import CremaDAdapter
from pathnet_fer.data.enterface import EnterfaceAdapter
from pathnet_fer.data.fer2013 import Fer2013Adapter
from pathnet_fer.data.generic import GenericAdapter
from pathnet_fer.data.jaffe import JaffeAdapter
from pathnet_fer.data.ravdess import RavdessAdapter
from pathnet_fer.data.savee import SaveeAdapter

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
