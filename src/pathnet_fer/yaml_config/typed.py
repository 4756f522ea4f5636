"""A YAML mapping checked against a dataclass: types, unknown keys, defaults.

Every stage keeps its settings in a dataclass (``FaceSettings``, ``PathNetConfig``, a
study's ``ExperimentConfig``); this turns a parsed YAML section into one, converting only
where lossless (int -> float, ``1e-2`` -> 0.01) and naming the offending key otherwise.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any

from pathnet_fer.yaml_config.bounds import short_repr
from pathnet_fer.yaml_config.errors import ConfigError


# ---------------------------------------------------------------------- type checking
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def check_value(value: Any, tp: Any, where: str) -> Any:
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
                return check_value(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(
            f"{where}: {short_repr(value)} is not {' or '.join(map(_type_name, args))}"
        )
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {short_repr(value)}")
        _, vt = typing.get_args(tp)
        return {str(k): check_value(v, vt, f"{where}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {short_repr(value)}")
        (vt, *_) = typing.get_args(tp) or (Any,)
        return [check_value(v, vt, f"{where}[{i}]") for i, v in enumerate(value)]
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


def from_dict(cls: type, data: Any, where: str) -> Any:
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
            kwargs[f.name] = check_value(
                data[f.name], hints[f.name], f"{where}.{f.name}".lstrip(".")
            )
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where or 'config'}: {err}") from err


def check_section(values: dict[str, Any], cls: type, where: str, skip=()) -> dict[str, Any]:
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
            out[f.name] = check_value(values[f.name], hints[f.name], f"{where}.{f.name}")
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


def check_section_partial(values: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    full = check_section(values, cls, where)
    return {k: full[k] for k in values}


_FLOAT = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"


def _yaml11_float(value: Any) -> Any:
    """``1e-2`` is a string to YAML 1.1 (PyYAML); as a number setting it means 0.01."""
    if isinstance(value, str) and re.fullmatch(_FLOAT, value.strip()):
        return float(value)
    return value
