"""A chain's every head in one model: each link's frozen path and readout, and their mix.

PathNet forgets nothing: after a chain FER-2013 -> CK+48 -> JAFFE the net still holds the
FER-2013 path and readout bit for bit beside the later links'. A model file of kind
``pathnet-heads`` keeps each of them as a *head* (a standalone path model: the path's
modules and that link's readout), so one file answers as the in-the-wild source, as any
destination, or as their combination.

The combination (``rule: mean``): each head's probabilities are calibrated by its own
temperature (fit on faces that head never trained on, see
``experiments/calibration.py``), placed in the union of the heads' emotions, and
averaged with the heads' weights; an emotion only some heads know is averaged over those
heads, then each row is renormalised. Nothing else is fitted, so the combination can
only have seen held-out data through the temperatures. Which head (or the combination)
a study deploys is decided by cross-dataset measurement (docs/results-fer2013.md).

``HeadsModel.forward`` returns the log of the combined probabilities, so a heads model
plugs into everything that takes a path model's logits (soft-max of a log-probability is
that probability).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

FORMAT = "pathnet-fer-heads-model"
COMBINED = "combined"
"""The name that selects the combination of every head (``--head combined``)."""
ALL = "all"
"""``--head all``: the combination, plus every head's probabilities in its own columns."""
RULES = ("mean",)
_FLOOR = 1e-12  # log(0) guard for an emotion no head gives mass to


class HeadsModel(nn.Module):
    """Several path models over the same input, one per chain link (see module doc)."""

    def __init__(
        self,
        heads: Sequence[nn.Module],
        names: Sequence[str],
        class_names: Sequence[Sequence[str]],
        *,
        temperatures: Sequence[float] | None = None,
        weights: Sequence[float] | None = None,
        rule: str = "mean",
        descriptions: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        n = len(heads)
        if n < 1 or not (len(names) == len(class_names) == n):
            raise ValueError("a heads model needs one name and one class list per head")
        if len(set(names)) != n or COMBINED in names or ALL in names:
            raise ValueError(
                f"head names must be distinct and not {COMBINED!r}/{ALL!r}: {list(names)}"
            )
        if rule not in RULES:
            raise ValueError(f"unknown combination rule {rule!r} ({' | '.join(RULES)})")
        self.heads = nn.ModuleList(heads)
        self.names = [str(x) for x in names]
        self.head_classes = [tuple(str(c) for c in cs) for cs in class_names]
        self.temperatures = [float(t) for t in (temperatures or [1.0] * n)]
        self.weights = [float(w) for w in (weights or [1.0] * n)]
        if len(self.temperatures) != n or len(self.weights) != n:
            raise ValueError("one temperature and one weight per head")
        if not all(math.isfinite(t) and t > 0 for t in self.temperatures):
            raise ValueError(f"head temperatures must be positive: {self.temperatures}")
        if not all(math.isfinite(w) and w >= 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError(f"head weights must be >= 0 and not all 0: {self.weights}")
        self.rule = rule
        self.descriptions = [dict(d) for d in (descriptions or [{} for _ in range(n)])]
        union: list[str] = []
        for cs in self.head_classes:
            union += [c for c in cs if c not in union]
        self.class_names = tuple(union)
        # mix[h]: (C_h, C) one-hot placement of head h's classes in the union
        for h, cs in enumerate(self.head_classes):
            place = torch.zeros(len(cs), len(union), dtype=torch.float64)
            place[torch.arange(len(cs)), torch.tensor([union.index(c) for c in cs])] = 1.0
            self.register_buffer(f"_place{h}", place, persistent=False)

    def index(self, name: str) -> int:
        """The position of head ``name``, or a ``KeyError`` naming the heads there are."""
        if name not in self.names:
            raise KeyError(
                f"no head {name!r} in this model; its heads: {', '.join(self.names)} "
                f"(or {COMBINED!r}, {ALL!r})"
            )
        return self.names.index(name)

    def head_proba(self, x: torch.Tensor, h: int) -> torch.Tensor:
        """Head ``h``'s calibrated probabilities over its own classes (float64)."""
        logits = self.heads[h](x).double()
        return torch.softmax(logits / self.temperatures[h], dim=1)

    def combined_proba(self, x: torch.Tensor) -> torch.Tensor:
        """The weighted mean of the calibrated heads over the union of their classes."""
        return self.combine([self.head_proba(x, h) for h in range(len(self.heads))])

    def combine(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        """The combination of the heads' calibrated probabilities ``parts[h]`` (n, C_h)
        (float64), over the union of their classes (see module doc)."""
        total = None
        mass = None
        for h, p in enumerate(parts):
            place = getattr(self, f"_place{h}").to(p.device)
            w = self.weights[h]
            part = p.double() @ place * w
            cover = place.sum(0) * w
            total = part if total is None else total + part
            mass = cover if mass is None else mass + cover
        mixed = total / mass.clamp_min(_FLOOR)
        return mixed / mixed.sum(1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the combined probabilities (a soft-max of it gives them back)."""
        return self.combined_proba(x).clamp_min(_FLOOR).log().float()

    def config_dict(self) -> dict[str, Any]:
        """Everything besides the state_dict needed to rebuild the model."""
        return {
            "format": FORMAT,
            "rule": self.rule,
            "class_names": list(self.class_names),
            "heads": [
                {
                    "name": name,
                    "class_names": list(cs),
                    "temperature": t,
                    "weight": w,
                    "description": d,
                    "config": head.config_dict(),
                }
                for name, cs, t, w, d, head in zip(
                    self.names, self.head_classes, self.temperatures, self.weights,
                    self.descriptions, self.heads, strict=True,
                )
            ],
        }  # fmt: skip

    @classmethod
    def from_config(
        cls, config: dict[str, Any], rebuild: Callable[[dict[str, Any]], nn.Module]
    ) -> HeadsModel:
        """Rebuild from ``config_dict()``; ``rebuild`` makes one head from its config."""
        if config.get("format") != FORMAT:
            raise ValueError(f"not a heads model config (format={config.get('format')!r})")
        heads = config["heads"]
        if not isinstance(heads, list) or not heads:
            raise ValueError("a heads model config lists no heads")
        model = cls(
            [rebuild(h["config"]) for h in heads],
            [h["name"] for h in heads],
            [h["class_names"] for h in heads],
            temperatures=[h["temperature"] for h in heads],
            weights=[h["weight"] for h in heads],
            rule=config.get("rule", "mean"),
            descriptions=[h.get("description") or {} for h in heads],
        )
        if list(model.class_names) != list(config.get("class_names", model.class_names)):
            raise ValueError("the stored class union does not match the heads' classes")
        return model

    def with_temperatures(self, temperatures: dict[str, float]) -> HeadsModel:
        """Set the named heads' calibration temperatures (others unchanged); returns self."""
        for name, t in temperatures.items():
            t = float(t)
            if not (math.isfinite(t) and t > 0):
                raise ValueError(f"head {name!r}: temperature must be positive, got {t}")
            self.temperatures[self.index(name)] = t
        return self
