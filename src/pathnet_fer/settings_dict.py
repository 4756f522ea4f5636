"""Dict round-trips for the settings dataclasses (configs, checkpoints, model files)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Self


class SettingsDict:
    """``to_dict``/``from_dict`` for a dataclass; unknown keys are an error, never ignored
    (a typo in a config or a file from another version must not pass silently)."""

    # Fields added after files (checkpoints, run dirs, source-store keys, model files)
    # were written: omitted from ``to_dict`` while at their default, so such a file's
    # identity is unchanged and it still reads as "trained with the default".
    LATER_FIELDS: tuple[str, ...] = ()  # a plain class attribute: SettingsDict is no dataclass

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)  # type: ignore[call-overload]
        defaults = {f.name: f.default for f in fields(self)}  # type: ignore[arg-type]
        for name in self.LATER_FIELDS:
            if out[name] == defaults[name]:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
        return cls(**data)
