"""Config files: YAML read with bounds, ``extends:`` chains merged, ``--set`` overrides.

``find_config`` takes a path or the name of a shipped config (``configs/<name>.yaml`` of
the checkout); ``extends: other.yaml`` merges a file over another (relative to it, else a
shipped config); ``--set a.b=c`` overrides any key, its value parsed as YAML. Nothing
here knows a config's keys: the result is a plain mapping for a schema to check.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from pathnet_fer.paths import REPO_ROOT
from pathnet_fer.yaml_config.bounds import (
    MAX_CONFIG_BYTES,
    MAX_EXTENDS_DEPTH,
    count_values,
    short_repr,
)
from pathnet_fer.yaml_config.errors import ConfigError

CONFIG_DIR = REPO_ROOT / "configs"


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
