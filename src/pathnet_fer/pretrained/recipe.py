"""Is the shipped model current? Its recorded recipe against ``configs/pretrained.yaml``.

The recipe rule (``recipe_differences``): the file is current when the config it records,
read with today's defaults, equals ``configs/pretrained.yaml`` resolved today. A key the
config schema gains later with its default value therefore needs no rebuild (the recorded
config lacks it and reads as the default); a changed value, or a new key set to something
else than its default, does. Settings that change no result (logging, executor workers,
data root, cache) are ignored, as for a resumed run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pathnet_fer.experiments.config_loading import build_config, load_config
from pathnet_fer.experiments.run_compat import config_differences
from pathnet_fer.pretrained import RECIPE, SEEDS
from pathnet_fer.pretrained.info import pretrained_info


def recipe_differences(
    path: str | os.PathLike | None = None,
    config: str | os.PathLike = RECIPE,
    overrides: list[str] | None = None,
    seeds: Sequence[int] | None = SEEDS,
) -> list[str]:
    """Where the model file's recorded recipe differs from ``config`` resolved now
    (``key: recorded != now``); [] when the file is current (see the module doc).
    ``seeds``: the seeds it must average (None: not checked, e.g. for one seed's file)."""
    info = pretrained_info(path)
    recorded = info.get("config")
    if not isinstance(recorded, dict):
        return ["the model file records no recipe config (metadata.pretrained.config)"]
    try:
        then = build_config(recorded).to_dict()  # keys it lacks read as today's defaults
    except ValueError as err:  # a key the schema no longer knows: the recipe changed
        return [f"the recorded recipe does not read with this version: {err}"]
    now = load_config(config, overrides).to_dict()
    diff = [d.replace("(run dir)", "(model file)") for d in config_differences(then, now)]
    had = [int(s) for s in info.get("seeds") or [then["seed"]]]
    if seeds is not None and had != [int(s) for s in seeds]:
        diff.append(f"seeds: {had} (model file) != {list(seeds)} (now)")
    return diff
