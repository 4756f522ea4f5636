"""Dict round-trips for the settings dataclasses (configs, checkpoints, model files)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Self


class SettingsDict:
    """``to_dict``/``from_dict`` for a dataclass; unknown keys are an error, never ignored
    (a typo in a config or a file from another version must not pass silently)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
        return cls(**data)
