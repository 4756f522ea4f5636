"""PathNet super-network settings (the paper's defaults: L=3, M=20, U=20, N=5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pathnet_fer.settings_dict import SettingsDict

COMBINE_MODES = ("mean", "sum")
INIT_MODES = ("he-combine", "torch-linear")


@dataclass(frozen=True)
class PathNetConfig(SettingsDict):
    """Shape of the super-network.

    ``input_dim``: flattened input size (48x48 grey crop -> 2304).
    ``layers`` (L), ``modules`` (M per layer), ``units`` (U per module),
    ``max_active`` (N: at most N distinct modules per layer in a path).
    ``combine``: how the outputs of a layer's active modules are merged: ``mean``
    (the paper) or ``sum`` (original PathNet).
    ``init``: ``he-combine`` (default): weights normal with He variance 2/fan_in,
    scaled by N (mean) or 1/N (sum) so that combining N modules keeps the activation
    scale, biases 0 (without it, 3 averaged layers start almost silent and SGD at
    lr 0.02 barely moves: digits stays at chance for 3000 steps);
    ``torch-linear``: ``nn.Linear``'s uniform +-1/sqrt(fan_in). Readouts always use
    ``nn.Linear``'s default.
    """

    input_dim: int
    layers: int = 3
    modules: int = 20
    units: int = 20
    max_active: int = 5
    combine: str = "mean"
    init: str = "he-combine"

    def __post_init__(self) -> None:
        for name in ("input_dim", "layers", "modules", "units", "max_active"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PathNetConfig.{name} must be a positive int, got {value!r}")
        if self.max_active > self.modules:
            raise ValueError(
                f"PathNetConfig.max_active ({self.max_active}) cannot exceed modules ({self.modules})"
            )
        if self.init not in INIT_MODES:
            raise ValueError(f"PathNetConfig.init must be one of {INIT_MODES}, got {self.init!r}")
        if self.combine not in COMBINE_MODES:
            raise ValueError(
                f"PathNetConfig.combine must be one of {COMBINE_MODES}, got {self.combine!r}"
            )

    def layer_input_dims(self) -> list[int]:
        """Input size of each layer's modules: the data, then the previous layer's units."""
        return [self.input_dim] + [self.units] * (self.layers - 1)


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable ``field: a != b`` lines for two config dicts (for refusal messages)."""
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<missing>") != b.get(key, "<missing>"):
            out.append(f"{key}: {a.get(key, '<missing>')!r} != {b.get(key, '<missing>')!r}")
    return out
