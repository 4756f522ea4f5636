"""The model the package ships: ``pathnet_fer/pretrained/default.pt`` (package data).

``pathnet-fer predict`` and ``evaluate`` use it when no ``--model`` is given, and
``Predictor.pretrained()`` loads it. It is an ordinary model file (formats/model_file.py)
built by ``pathnet-fer pretrained build`` from the study ``configs/pretrained.yaml``
(build.py); its ``metadata.pretrained`` holds what the card (docs/model-card.md in the
source repository) says in short: the recipe's resolved config, the figures measured at
build time with their commands, and a summary ``predict --info`` prints.

The recipe rule (``recipe_differences``): the file is current when the config it records,
read with today's defaults, equals ``configs/pretrained.yaml`` resolved today. A key the
config schema gains later with its default value therefore needs no rebuild (the recorded
config lacks it and reads as the default); a changed value, or a new key set to something
else than its default, does. Settings that change no result (logging, executor workers,
data root, cache) are ignored, as for a resumed run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MODEL_FILE = "default.pt"
RECIPE = "pretrained"  # configs/pretrained.yaml
MODEL_ENV = "PATHNET_FER_PRETRAINED"
"""Another file to use as the shipped model (tests, or a model rebuilt elsewhere)."""


class NoShippedModelError(FileNotFoundError):
    """This installation carries no shipped model file."""


def pretrained_path() -> Path:
    """The shipped model file (``$PATHNET_FER_PRETRAINED`` when set)."""
    env = os.environ.get(MODEL_ENV)
    path = Path(env).expanduser() if env else Path(__file__).resolve().with_name(MODEL_FILE)
    if not path.is_file():
        raise NoShippedModelError(
            f"no shipped model at {path}: this installation has none (build it from a "
            "checkout with `pathnet-fer pretrained build`), or give a model file (--model)"
        )
    return path


def pretrained_info(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """``metadata.pretrained`` of the shipped model (or of ``path``); {} when absent."""
    from pathnet_fer.formats.model_file import load_model

    model = load_model(path or pretrained_path())
    return dict(model.metadata.get("pretrained") or {})


def summary(path: str | os.PathLike | None = None) -> str | None:
    """The card's summary stored in the model file (what ``predict --info`` prints); None
    for a model file without one."""
    text = pretrained_info(path).get("summary")
    return str(text) if text else None


def recipe_differences(
    path: str | os.PathLike | None = None,
    config: str | os.PathLike = RECIPE,
    overrides: list[str] | None = None,
) -> list[str]:
    """Where the model file's recorded recipe differs from ``config`` resolved now
    (``key: recorded != now``); [] when the file is current (see the module doc)."""
    from pathnet_fer.experiments.config import build_config, load_config
    from pathnet_fer.experiments.runner import _differences

    recorded = pretrained_info(path).get("config")
    if not isinstance(recorded, dict):
        return ["the model file records no recipe config (metadata.pretrained.config)"]
    try:
        then = build_config(recorded).to_dict()  # keys it lacks read as today's defaults
    except ValueError as err:  # a key the schema no longer knows: the recipe changed
        return [f"the recorded recipe does not read with this version: {err}"]
    now = load_config(config, overrides).to_dict()
    return [d.replace("(run dir)", "(model file)") for d in _differences(then, now)]
