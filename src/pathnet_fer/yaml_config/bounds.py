"""Bounds on a YAML config itself, checked before any type check walks it.

A config file is at most ``MAX_CONFIG_BYTES`` and expands to at most ``MAX_CONFIG_VALUES``
values (``count_values``), so a "billion laughs" of aliases is refused at once, under any
key. Messages quote values through ``short_repr``: never an unbounded repr.
"""

from __future__ import annotations

import reprlib
from typing import Any

from pathnet_fer.yaml_config.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20
"""A config file is a few KB; a megabyte is no config."""
MAX_CONFIG_VALUES = 100_000
"""Values (mappings, lists, scalars) a config may hold once YAML aliases are expanded."""
MAX_CONFIG_DEPTH = 100
"""Nesting of mappings and lists (deeper would also overflow recursive checks)."""
MAX_EXTENDS_DEPTH = 32
"""Configs in one ``extends:`` chain (the shipped ones are at most 4 deep)."""
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 2


def short_repr(value: Any) -> str:
    """A repr of bounded length (nested and long values elided with ``...``)."""
    text = _REPR.repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def count_values(data: Any, where: str) -> int:
    """How many values ``data`` holds with aliases expanded, as every check will walk it;
    ``ConfigError`` as soon as that passes ``MAX_CONFIG_VALUES`` or nesting passes
    ``MAX_CONFIG_DEPTH`` (so a billion laughs costs ``MAX_CONFIG_VALUES`` steps)."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{where}: the config holds more than {MAX_CONFIG_VALUES:,} values once its "
                "YAML aliases (*name) are expanded; a config has a few hundred, so this is "
                "refused unread (an alias bomb?)"
            )
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{where}: values nested more than {MAX_CONFIG_DEPTH} deep")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
            stack.extend((k, depth + 1) for k in node)
        elif isinstance(node, list | tuple):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, str) and len(node) > 10_000:
            raise ConfigError(f"{where}: a string of {len(node):,} characters ({short_repr(node)})")
    return count
