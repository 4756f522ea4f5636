"""The model the package ships: ``pathnet_fer/pretrained/default.pt`` (package data).

``pathnet-fer predict`` and ``evaluate`` use it when no ``--model`` is given, and
``Predictor.pretrained()`` loads it. It is an ordinary model file (formats/model_file.py)
built by ``pathnet-fer pretrained build`` from the study ``configs/pretrained.yaml``
(build.py); its ``metadata.pretrained`` holds what the card (docs/model-card.md in the
source repository) says in short: the recipe's resolved config, the figures measured at
build time with their commands, and a summary ``predict --info`` prints.

The recipe rule is ``pretrained.recipe.recipe_differences``. This module is below the
stages that use the shipped model (experiments' cross-dataset table, predict): it knows
only where the file is and what it says about itself.
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_FILE = "default.pt"
RECIPE = "pretrained"  # configs/pretrained.yaml
SEEDS = (0,)
"""The seeds of ``configs/pretrained.yaml`` the shipped model averages (``pathnet-fer
pretrained build`` trains each; ``pretrained check`` compares a shipped file's with these):
one today; several seeds ship as one model (pretrained/seeds.py) when a measurement says
it pays (docs/results-fer2013.md, "Three seeds as one model")."""
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
