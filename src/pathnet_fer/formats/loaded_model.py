"""A model file as it is used: the network with its classes, face settings and input, its
calibration temperature, its heads, whether it averages each face with its mirror image.
model_file.load_model builds one after checking
the file; everything that scores or predicts takes one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pathnet_fer.formats.class_prior import HEAD_PRIORS, PriorError, require_prior
from pathnet_fer.pathnet.heads_model import COMBINED, HeadsModel

TEMPERATURE_RANGE = (math.exp(-3.0), math.exp(3.0))
"""The calibration temperatures a model file may carry: exactly the range
``experiments.calibration.fit_temperature`` searches (log T in [-3, 3]). Outside it the
soft-max is degenerate: nan or 0 give NaN probabilities, a negative T inverts them (the
least likely emotion wins), a huge T makes them uniform (the first class always wins)."""

CPU_ROWS_PER_PASS = 64
"""Crops per forward pass on the CPU: a conv or block path's first-layer maps for 64
crops stay in the processor's caches, for 512 they do not (one thread, CPU time per
face: a conv source 346-431 us at 16-64 rows against 1,080 at 512; the shipped block
model 1,573 against 2,143; ``benchmarks/bench_inference_rows.py``). A GPU gets every
row at once."""

INPUT_SCALING = "uint8/255"
"""How crops become network inputs: flattened (H, W[, C]) uint8 crop divided by 255,
exactly as ``FaceDataset.features()`` builds training inputs."""


MIRROR_KEY = "inference"
"""``metadata[MIRROR_KEY]["mirror"]``: the file's own inference setting (absent: off).
Covered by the file's content checksum: the calibration temperature is fitted on the
logits the setting gives."""


class ModelFileError(ValueError):
    """A model file that cannot be used: unreadable, corrupt, incompatible or inconsistent."""


@dataclass(frozen=True)
class InputSpec:
    """What the network expects: a ``size`` x ``size`` crop in ``colour``, flattened."""

    size: int
    colour: str
    input_dim: int
    scaling: str = INPUT_SCALING

    @property
    def channels(self) -> int:
        return 3 if self.colour == "rgb" else 1

    def describe(self) -> str:
        return f"{self.size}x{self.size} {self.colour} crops ({self.input_dim} inputs)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "colour": self.colour,
            "channels": self.channels,
            "input_dim": self.input_dim,
            "scaling": self.scaling,
        }


def input_spec_for(face_settings: Any) -> InputSpec:
    """The input a network trained on crops made with these face settings receives."""
    size, colour = int(face_settings.size), str(face_settings.colour)
    if colour not in ("grey", "rgb"):
        raise ModelFileError(f"unknown crop colour {colour!r} in face settings (grey | rgb)")
    channels = 3 if colour == "rgb" else 1
    return InputSpec(size=size, colour=colour, input_dim=size * size * channels)


def check_compatible(expected: InputSpec, face_settings: Any, *, what: str = "model") -> None:
    """Refuse face settings whose crops do not fit the network's input layer."""
    got = input_spec_for(face_settings)
    if (got.size, got.colour) != (expected.size, expected.colour):
        raise ModelFileError(
            f"the {what} expects {expected.describe()}, but the face settings give "
            f"{got.describe()}; predict with the model's own face settings "
            f"(size={expected.size}, colour={expected.colour}) or use a model trained on "
            f"{got.size}x{got.size} {got.colour} crops"
        )


@dataclass
class LoadedModel:
    """A checked model file, ready to classify face crops."""

    model: nn.Module
    class_names: tuple[str, ...]
    face_settings: Any
    input: InputSpec
    dataset: str
    metadata: dict[str, Any]
    package_version: str
    format_version: int
    path: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    mirror: bool = False
    """Average each crop's logits with those of its mirror image (left-right) before the
    temperature: a face's emotion does not change in a mirror, the network's errors partly
    do. Twice the network time per face. Default: the file's ``inference.mirror``."""
    prior: str = "train"
    """``train``: probabilities as the network gives them (its training faces' class
    frequencies built in); ``uniform``: those frequencies divided out (formats/class_prior.py).
    Default: the file's ``inference.prior``."""
    class_prior: tuple[float, ...] | None = None
    """The training faces' class frequencies the file records (None: not recorded)."""
    head_priors: Mapping[str, tuple[float, ...]] | None = None
    """A heads model's: each head's training frequencies (None: not recorded). Under
    ``uniform`` each head divides out its own before the heads are combined."""

    def __post_init__(self) -> None:
        self.model.eval()

    @property
    def device(self) -> torch.device:
        try:
            return next(self.model.parameters()).device
        except StopIteration:  # pragma: no cover - a model always has a readout
            return torch.device("cpu")

    def to(self, device: str | torch.device) -> LoadedModel:
        self.model.to(device)
        return self

    def mirrored(self, on: bool) -> LoadedModel:
        """This model with mirror averaging on or off (``--mirror on|off``). The file's
        temperature was fitted with its own setting: the other one is a little off."""
        return replace(self, mirror=bool(on))

    def with_prior(self, name: str) -> LoadedModel:
        """This model assuming the ``train`` or a ``uniform`` class prior (``--prior``);
        ``ModelFileError`` when the file records no training prior to divide out."""
        try:
            where = str(self.path or "the model")
            return replace(self, prior=require_prior(name, self.has_prior, where))
        except PriorError as err:
            raise ModelFileError(str(err)) from None

    @property
    def has_prior(self) -> bool:
        """Whether the file records what ``uniform`` divides out (a heads model: for
        every head)."""
        if isinstance(self.model, HeadsModel):
            return self.head_priors is not None  # model_file checks: one for every head
        return self.class_prior is not None

    @property
    def head_names(self) -> list[str]:
        """The heads a ``--head`` can name: each link of a heads model, or (any other
        model) its one dataset."""
        if isinstance(self.model, HeadsModel):
            return list(self.model.names)
        return [self.dataset or "model"]

    def with_head(self, name: str) -> LoadedModel:
        """This model answering as one head (its own classes and calibration), or as the
        combination of every head (``combined``: the model itself). A single-path
        model has one head, its dataset: ``combined`` or that name give it back."""
        if not isinstance(self.model, HeadsModel):
            if name in (COMBINED, *self.head_names):
                return self
            raise ModelFileError(
                f"{self.path or 'the model'} is a single path trained on "
                f"{self.dataset or '?'}: it has no head {name!r} (only a chain's heads model, "
                f"e.g. models/<set>/final_heads.pt, has several)"
            )
        if name == COMBINED:
            return self
        try:
            h = self.model.index(name)
        except KeyError as exc:
            raise ModelFileError(f"{self.path or 'model'}: {exc.args[0]}") from None
        head = self.model.heads[h]
        prior = self.head_priors.get(name) if self.head_priors else None
        # the head as a standalone file would say it: its own prior, no one else's
        inference = {k: v for k, v in (self.metadata.get(MIRROR_KEY) or {}).items()
                     if k != HEAD_PRIORS} | ({"class_prior": list(prior)} if prior else {})  # fmt: skip
        meta = {
            **self.metadata,
            **self.model.descriptions[h],
            "head": name,
            "calibration": {"temperature": self.model.temperatures[h]},
            MIRROR_KEY: inference,
        }
        return replace(
            self,
            model=head,
            class_names=self.model.head_classes[h],
            dataset=str(self.model.descriptions[h].get("dataset", name)),
            metadata=meta,
            config=head.config_dict(),
            prior=self.prior if self.has_prior else "train",
            class_prior=prior,
            head_priors=None,
        )

    @torch.inference_mode()
    def predict_heads(self, crops: np.ndarray) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """Every head's calibrated probabilities ``{name: (class_names, (n, C_h))}``."""
        return {
            name: (m.class_names, m.predict_proba(crops))
            for name in self.head_names
            for m in [self.with_head(name)]
        }

    def mix(self, heads: Mapping[str, tuple[tuple[str, ...], np.ndarray]]) -> np.ndarray:
        """A heads model's combination of ``predict_heads``' probabilities (in head order)."""
        return self.model.combine([torch.from_numpy(p) for _, p in heads.values()]).numpy()

    def features(self, crops: np.ndarray) -> torch.Tensor:
        """uint8 crops ``(n, size, size[, 3])`` -> float inputs ``(n, input_dim)`` in [0, 1]."""
        crops = np.asarray(crops)
        if crops.dtype != np.uint8:
            raise ValueError(f"crops must be uint8, got {crops.dtype}")
        n = crops.shape[0]
        if crops[0:1].size and crops.reshape(n, -1).shape[1] != self.input.input_dim:
            raise ModelFileError(
                f"crops of shape {crops.shape[1:]} do not fit a model that expects "
                f"{self.input.describe()}"
            )
        x = torch.from_numpy(crops.reshape(n, -1)).to(self.device, torch.float32)
        return x.div_(255.0)

    @property
    def temperature(self) -> float:
        """The soft-max temperature the file carries (``metadata.calibration``; 1 = none),
        checked again here: ``metadata`` is a plain dict a caller may have changed."""
        return calibration_temperature(self.metadata, self.path or "model")

    @torch.inference_mode()
    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, C)`` (float64) for uint8 face crops, calibrated by
        the file's temperature (which alone never changes the arg-max), under the model's
        ``prior``: ``uniform`` subtracts the log training frequencies from the calibrated
        logits (the posterior if every emotion were equally likely). A heads model mixes
        its heads' probabilities, each computed so (the cross-dataset table's rule)."""
        if len(crops) == 0:
            return np.zeros((0, len(self.class_names)))
        if isinstance(self.model, HeadsModel):
            # each head as its own file answers (its temperature, mirror averaging and,
            # under ``uniform``, its own prior divided out), then the heads are mixed
            return self.mix(self.predict_heads(crops))
        z = self.logits(crops) / self.temperature
        if self.prior == "uniform":
            z = z - torch.tensor(self.class_prior, dtype=z.dtype, device=z.device).log()
        return torch.softmax(z, dim=1).cpu().numpy()

    @torch.inference_mode()
    def logits(self, crops: np.ndarray) -> torch.Tensor:
        """Uncalibrated logits ``(n, C)`` (float64), mirror-averaged when ``mirror``."""
        x = self.features(crops)
        rows = CPU_ROWS_PER_PASS if x.device.type == "cpu" else len(x)
        out = torch.cat([self.model(x[i : i + rows]) for i in range(0, len(x), rows)]).double()
        if self.mirror:
            s, c = self.input.size, self.input.channels
            flipped = x.view(len(x), s, s, c).flip(2).reshape(len(x), -1)
            other = [self.model(flipped[i : i + rows]) for i in range(0, len(x), rows)]
            out = (out + torch.cat(other).double()) / 2
        return out


def calibration_temperature(
    metadata: Mapping[str, Any], where: str | os.PathLike, *, hint: str = ""
) -> float:
    """The temperature ``metadata["calibration"]`` holds (1.0 without calibration), or
    ``ModelFileError`` in one line naming ``where`` and the value: an unusable
    temperature silently gives NaN, inverted or uniform probabilities."""
    calibration = metadata.get("calibration")
    if calibration is None:
        return 1.0
    value = calibration.get("temperature") if isinstance(calibration, Mapping) else None
    usable = isinstance(value, int | float) and not isinstance(value, bool)
    t = float(value) if usable else math.nan
    lo, hi = TEMPERATURE_RANGE
    if usable and math.isfinite(t) and lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9):
        return t
    if not isinstance(calibration, Mapping):
        shown = f"({_shown(calibration)} instead of a calibration mapping)"
    elif "temperature" not in calibration:
        shown = "(missing)"
    else:
        shown = _shown(value)
    raise ModelFileError(
        f"{where}: calibration temperature {shown} is not usable: it must be a finite "
        f"number in [{lo:.4g}, {hi:.4g}], the range the calibration fit searches"
        + (f"; {hint}" if hint else "")
    )


def mirror_setting(metadata: Mapping[str, Any], where: str | os.PathLike) -> bool:
    """``metadata["inference"]["mirror"]`` (False when absent), or ``ModelFileError``
    naming ``where`` when it is not a boolean."""
    inference = metadata.get(MIRROR_KEY)
    if inference is None:
        return False
    value = inference.get("mirror", False) if isinstance(inference, Mapping) else None
    if not isinstance(value, bool):
        shown = _shown(value) if isinstance(inference, Mapping) else f"({_shown(inference)})"
        raise ModelFileError(
            f"{where}: inference setting mirror {shown} is not usable: it must be true or "
            "false (metadata.inference.mirror)"
        )
    return value


def _shown(value: Any) -> str:
    """A short, bounded rendering of a stored value for a message."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = repr(value)
        return text if len(text) <= 40 else f"{text[:37]}..."
    return f"a {type(value).__name__}"
