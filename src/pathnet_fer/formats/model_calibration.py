"""A model file's calibration, written after training: one temperature for a single path,
one per head for a chain's heads model. Written to another path when asked (a run's
deploy step writes ``models/`` from the files its jobs staged), and never rewritten when
the file already holds it."""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pathnet_fer.formats.loaded_model import LoadedModel, ModelFileError, calibration_temperature
from pathnet_fer.formats.model_file import jsonable, load_model, save_loaded
from pathnet_fer.pathnet.heads_model import HeadsModel


def set_calibration(
    path: str | os.PathLike,
    calibration: Mapping[str, Any],
    loaded: LoadedModel | None = None,
    out: str | os.PathLike | None = None,
) -> Path:
    """Write the model file ``path`` with ``metadata.calibration`` (must hold a positive
    ``temperature``) to ``out`` (default: rewrite ``path``); everything else, weights
    included, is kept as it was. ``loaded``: the file already read (saves reading it
    again); a file that already carries this calibration is copied as it is (left
    untouched when ``out`` is ``path``). An unusable temperature raises
    ``ModelFileError`` before the file is read or touched."""
    calibration_temperature({"calibration": dict(calibration)}, path)
    target = Path(out) if out is not None else Path(path)
    loaded = loaded if loaded is not None else load_model(path)
    if loaded.metadata.get("calibration") == jsonable(dict(calibration)):
        return copy_model_file(path, target)
    return _write(loaded, Path(path), target, {**loaded.metadata, "calibration": dict(calibration)})


def set_head_temperatures(
    path: str | os.PathLike,
    fits: Mapping[str, Mapping[str, Any]],
    loaded: LoadedModel | None = None,
    out: str | os.PathLike | None = None,
) -> Path:
    """Write a heads model file with each named head's calibration to ``out`` (default:
    rewrite ``path``): ``fits[name]`` holds its ``temperature`` and a note of what it was
    fit on (kept in ``metadata.head_calibration``). The combination uses the
    temperatures; weights are kept as they are."""
    loaded = loaded if loaded is not None else load_model(path)
    if not isinstance(loaded.model, HeadsModel):
        raise ModelFileError(f"{path} is not a heads model: use set_calibration")
    for name, fit in fits.items():
        calibration_temperature({"calibration": dict(fit)}, f"{path} head {name}")
    loaded.model.with_temperatures({n: f["temperature"] for n, f in fits.items()})
    notes = dict(loaded.metadata.get("head_calibration") or {})
    notes.update({n: dict(f) for n, f in fits.items()})
    target = Path(out) if out is not None else Path(path)
    return _write(loaded, Path(path), target, {**loaded.metadata, "head_calibration": notes})


def _write(loaded: LoadedModel, path: Path, target: Path, metadata: Mapping[str, Any]) -> Path:
    """``loaded`` (read from ``path``) with ``metadata`` into ``target``, unless
    ``target`` already holds exactly that (deployed or calibrated before: left as it is)."""
    if _holds(target, loaded.model, metadata):
        return target
    return save_loaded(target, loaded, metadata)


def _holds(target: Path, model: nn.Module, metadata: Mapping[str, Any]) -> bool:
    """``target`` is a model file that already holds ``model`` (configuration and weights)
    with ``metadata``: writing them again would change nothing but the file's date."""
    if not target.is_file():
        return False
    try:
        current = load_model(target)
    except ModelFileError:
        return False
    if current.metadata != jsonable(dict(metadata)):
        return False
    if jsonable(current.model.config_dict()) != jsonable(model.config_dict()):
        return False
    old, new = current.model.state_dict(), model.state_dict()
    return old.keys() == new.keys() and all(torch.equal(old[k].cpu(), new[k].cpu()) for k in old)


def copy_model_file(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """``path`` copied byte for byte to ``out`` (atomically: a reader never sees half a
    file); nothing is done when they are the same file."""
    source, target = Path(path), Path(out)
    if target.exists() and (
        target.resolve() == source.resolve() or filecmp.cmp(source, target, shallow=False)
    ):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target
