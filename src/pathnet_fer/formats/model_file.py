"""One self-describing file per trained model: weights, path, readout, classes, settings.

A model file is what a user carries from a training run to their own videos, so it holds
everything prediction needs (no config files, no run directory) and is checked on load:
a file from an incompatible format version, a corrupt or truncated file, or one whose
input size does not match its face settings is refused with a message saying what to do.

Layout (a ``torch.save`` dict, read back with ``weights_only=True`` so loading a file
never executes code): ``format``, ``format_version``, ``package_version``,
``torch_version``, ``created``, ``model_kind``, ``model_config`` (the PathModel's
``config_dict()``: sizes and the path), ``state_dict`` (the path's fixed and trained
modules and the task's readout), ``weights_sha256``, ``class_names``, ``face_settings``
(``FaceSettings.to_dict()``), ``input`` (size, colour, channels, input_dim, scaling),
``dataset``, ``metadata`` (free JSON-like dict: run dir, fold, generation, scores; its
``calibration.temperature`` is applied by ``predict_proba``), ``content_sha256``.

Integrity: ``weights_sha256`` covers the tensors; ``content_sha256`` (format v3) covers
everything else that changes a prediction: the model config (path, combine), class names
and their order, face settings, input spec and ``metadata.calibration``. The rest of
``metadata`` only describes the model and may be edited. A calibration temperature must
be finite and within the range the calibration fit searches, checked on load and on write.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pathnet_fer import __version__
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.formats.class_prior import (
    HEAD_PRIORS,
    PriorError,
    read_head_priors,
    read_prior,
)
from pathnet_fer.formats.loaded_model import (
    INPUT_SCALING,
    MIRROR_KEY,
    InputSpec,
    LoadedModel,
    ModelFileError,
    calibration_temperature,
    check_compatible,
    input_spec_for,
    mirror_setting,
)
from pathnet_fer.pathnet.block_path_model import FORMAT as BLOCK_FORMAT
from pathnet_fer.pathnet.block_path_model import BlockPathModel
from pathnet_fer.pathnet.conv_path_model import FORMAT as CONV_FORMAT
from pathnet_fer.pathnet.conv_path_model import ConvPathModel
from pathnet_fer.pathnet.heads_model import FORMAT as HEADS_FORMAT
from pathnet_fer.pathnet.heads_model import HeadsModel
from pathnet_fer.pathnet.linear_path_model import FORMAT as LINEAR_FORMAT
from pathnet_fer.pathnet.linear_path_model import PathModel
from pathnet_fer.safe_load import UnsafeFileError, load_plain

FORMAT = "pathnet-fer-model"
FORMAT_VERSION = 4
"""The newest layout this version reads and writes; loaders refuse other versions clearly.
v2 added conv paths (``model_kind`` ``pathnet-conv-path``); v3 added ``content_sha256``
(required from v3 on), and block paths (``pathnet-block-path``, v3 files only: a reader
older than block modules refuses such a file, naming its kind); v4 added heads models
(``pathnet-heads``: every link of a chain, ``pathnet/heads_model.py``). A file is written in
the oldest version that holds its kind (a single path: v3, so older readers still read
it). v1 and v2 files still load: their weights are checked against ``weights_sha256``
and their temperature for range, but nothing else was checksummed when they were
written, so nothing else can be checked."""
READABLE_VERSIONS = (1, 2, 3, 4)
MODEL_KIND = "pathnet-path"
CONV_MODEL_KIND = "pathnet-conv-path"
BLOCK_MODEL_KIND = "pathnet-block-path"
HEADS_MODEL_KIND = "pathnet-heads"
MODEL_KINDS = {
    1: (MODEL_KIND,),
    2: (MODEL_KIND, CONV_MODEL_KIND),
    3: (MODEL_KIND, CONV_MODEL_KIND, BLOCK_MODEL_KIND),
    4: (MODEL_KIND, CONV_MODEL_KIND, BLOCK_MODEL_KIND, HEADS_MODEL_KIND),
}
"""The model kinds each format version may hold."""


def written_version(kind: str) -> int:
    """The format version a file of ``kind`` is written in: the oldest that holds it
    and checksums its content (v3 on)."""
    return min(v for v, kinds in MODEL_KINDS.items() if v >= 3 and kind in kinds)


_REQUIRED_KEYS = (
    "format",
    "format_version",
    "package_version",
    "model_kind",
    "model_config",
    "state_dict",
    "weights_sha256",
    "class_names",
    "face_settings",
    "input",
)
_REQUIRED_FROM = {"content_sha256": 3}
"""Keys required from a format version on (older files were written without them)."""


# --------------------------------------------------------------------------- saving


def save_model(
    path: str | os.PathLike,
    *,
    net: Any,
    task: Any,
    run: int,
    class_names: Sequence[str],
    face_settings: Any,
    dataset: str,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Export the best path of ``task`` (run ``run`` of a batched PathNet) to one file.

    ``net.path_model(task, run)`` gives the standalone module (the path's fixed and
    trained modules plus the task's readout); this writes it with everything prediction
    needs. Written atomically: a crash mid-write never leaves a half file under ``path``.
    """
    model = net.path_model(task, run=run)
    return save_path_model(
        path,
        model,
        class_names=class_names,
        face_settings=face_settings,
        dataset=dataset,
        metadata=metadata,
    )


def save_path_model(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    class_names: Sequence[str],
    face_settings: Any,
    dataset: str,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write an already extracted PathModel (see ``save_model``)."""
    class_names = [str(c) for c in class_names]
    if not class_names or len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names must be distinct and non-empty, got {class_names}")
    metadata = jsonable(dict(metadata or {}))
    calibration_temperature(metadata, path)  # never write a file load_model would refuse
    _priors(model, metadata, path, len(class_names))
    if isinstance(model, HeadsModel):
        if "calibration" in metadata:
            raise ValueError("a heads model carries one temperature per head, not a file-wide one")
        if tuple(class_names) != model.class_names:
            raise ValueError(
                f"class_names {class_names} differ from the heads' union {model.class_names}"
            )
        for name, t in zip(model.names, model.temperatures, strict=True):
            calibration_temperature({"calibration": {"temperature": t}}, f"{path} head {name}")
    spec = input_spec_for(face_settings)
    config = jsonable(model.config_dict())
    if _kind_of(config) not in MODEL_KINDS[FORMAT_VERSION]:
        raise ValueError(f"cannot save a {type(model).__name__}: not a PathNet path model")
    _check_model_shapes(model, spec, len(class_names), where="the model being saved")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": written_version(_kind_of(config)),
        "package_version": __version__,
        "torch_version": str(torch.__version__),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model_kind": _kind_of(config),
        "model_config": config,
        "state_dict": state,
        "weights_sha256": _weights_digest(state),
        "class_names": class_names,
        "face_settings": jsonable(face_settings.to_dict()),
        "input": spec.to_dict(),
        "dataset": str(dataset),
        "metadata": metadata,
    }
    payload["content_sha256"] = _content_digest(payload)
    return save_atomically(payload, path)


def save_loaded(path: str | os.PathLike, loaded: LoadedModel, metadata: Mapping[str, Any]) -> Path:
    """A loaded model (its network, classes, face settings, dataset) written again with
    ``metadata`` (e.g. a new calibration): ``save_path_model`` of its parts."""
    return save_path_model(
        path,
        loaded.model,
        class_names=loaded.class_names,
        face_settings=loaded.face_settings,
        dataset=loaded.dataset,
        metadata=dict(metadata),
    )


def save_atomically(payload: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` into a uniquely named temporary file beside ``path``, renamed into
    place: a reader never sees half a file, two writers never share a temporary one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model file is an ordinary file
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# --------------------------------------------------------------------------- loading


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Read and check a model file; raise ``ModelFileError`` saying what is wrong."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("**/*.pt"))[:3]
        hint = f" (e.g. {', '.join(str(p) for p in found)})" if found else ""
        raise ModelFileError(f"{path} is a folder, not a model file: give one .pt file{hint}")
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        payload = load_plain(path, "pathnet-fer model file")
    except UnsafeFileError as exc:
        raise ModelFileError(str(exc)) from None
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        raise ModelFileError(
            f"{path} is not a readable pathnet-fer model file (corrupt, truncated, or "
            f"another kind of file): {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        ) from exc
    return _from_payload(payload, path, device)


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Everything in a model file except the weights (for ``--info``-style listings)."""
    loaded = load_model(path)
    return {
        "file": str(path),
        "format_version": loaded.format_version,
        "model_kind": _kind_of(loaded.config),
        "package_version": loaded.package_version,
        "dataset": loaded.dataset,
        "class_names": list(loaded.class_names),
        "input": loaded.input.to_dict(),
        "face_settings": loaded.face_settings.to_dict(),
        "model_config": loaded.config,
        "metadata": loaded.metadata,
    }


def _from_payload(payload: Any, path: Path, device: str | torch.device) -> LoadedModel:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(
            f"{path} is not a pathnet-fer model file (no '{FORMAT}' header); export one with "
            "pathnet_fer.predict.save_model or use the model.pt an experiment run writes"
        )
    version = payload.get("format_version")
    if version not in READABLE_VERSIONS:
        written = payload.get("package_version", "?")
        hint = (
            "upgrade pathnet-fer to read it"
            if isinstance(version, int) and version > FORMAT_VERSION
            else "re-export the model with this version of pathnet-fer"
        )
        raise ModelFileError(
            f"{path} is model format v{version} (written by pathnet-fer {written}); this "
            f"pathnet-fer {__version__} reads format v{', v'.join(map(str, READABLE_VERSIONS))} "
            f"only: {hint}"
        )
    required = [*_REQUIRED_KEYS, *(k for k, v in _REQUIRED_FROM.items() if version >= v)]
    missing = [k for k in required if k not in payload]
    if missing:
        raise ModelFileError(f"{path} is incomplete (missing {', '.join(missing)}): corrupt file?")
    kind = payload["model_kind"]
    if kind not in MODEL_KINDS[version]:
        raise ModelFileError(
            f"{path} holds a {kind!r} model; format v{version} files hold "
            f"{' or '.join(repr(k) for k in MODEL_KINDS[version])} models only"
        )
    stored_config = payload["model_config"]
    if not isinstance(stored_config, dict) or _kind_of(stored_config) != kind:
        raise ModelFileError(
            f"{path} says it holds a {kind!r} model, but its model config is a "
            f"{_kind_of(stored_config) if isinstance(stored_config, dict) else 'unreadable'!r} "
            "one: the file is inconsistent (corrupt or edited); re-export the model"
        )
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: its metadata is not a mapping: corrupt file?")
    # Before the checksums: an edited temperature is named with its value.
    calibration_temperature(metadata, path, hint=_EDITED)
    mirror = mirror_setting(metadata, path)
    state = payload["state_dict"]
    if _weights_digest(state) != payload["weights_sha256"]:
        raise ModelFileError(f"{path}: weights do not match their checksum: the file is corrupt")

    try:
        face_settings = FaceSettings.from_dict(payload["face_settings"])
    except Exception as exc:
        raise ModelFileError(f"{path}: face settings unreadable by this version: {exc}") from exc
    spec_dict = payload["input"]
    spec = InputSpec(
        size=int(spec_dict["size"]),
        colour=str(spec_dict["colour"]),
        input_dim=int(spec_dict["input_dim"]),
        scaling=str(spec_dict.get("scaling", INPUT_SCALING)),
    )
    if spec.scaling != INPUT_SCALING:
        raise ModelFileError(f"{path}: unknown input scaling {spec.scaling!r}")
    check_compatible(spec, face_settings, what=f"model in {path}")
    if spec.size * spec.size * spec.channels != spec.input_dim:
        raise ModelFileError(f"{path}: input size {spec.describe()} is inconsistent: corrupt file?")
    class_names = tuple(str(c) for c in payload["class_names"])
    model = _rebuild(payload["model_config"], path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not fit the stored model config: {exc}") from exc
    _check_model_shapes(model, spec, len(class_names), where=str(path))
    try:
        prior, class_prior, head_priors = _priors(model, metadata, path, len(class_names))
    except PriorError as err:
        raise ModelFileError(f"{err}: {_EDITED}") from None
    if isinstance(model, HeadsModel):
        if class_names != model.class_names:
            raise ModelFileError(f"{path}: class names differ from its heads' classes: {_EDITED}")
        for name, t in zip(model.names, model.temperatures, strict=True):
            calibration_temperature({"calibration": {"temperature": t}}, f"{path} head {name}",
                                    hint=_EDITED)  # fmt: skip
    # Last: an inconsistent file is named by what is inconsistent (above); a consistent
    # one that was edited (class order, margin, temperature) only by this checksum.
    if "content_sha256" in payload and _content_digest(payload) != payload["content_sha256"]:
        raise ModelFileError(
            f"{path}: its model config, class names, face settings, calibration or inference "
            f"setting do not match their checksum: {_EDITED}"
        )
    model.to(device)
    return LoadedModel(
        model=model,
        class_names=class_names,
        face_settings=face_settings,
        input=spec,
        dataset=str(payload.get("dataset", "")),
        metadata=dict(metadata),
        package_version=str(payload["package_version"]),
        format_version=int(version),
        path=path,
        config=dict(payload["model_config"]),
        mirror=mirror,
        prior=prior,
        class_prior=class_prior,
        head_priors=head_priors,
    )


def _priors(
    model: nn.Module, metadata: Mapping[str, Any], path: Any, n_classes: int
) -> tuple[str, tuple[float, ...] | None, dict[str, tuple[float, ...]] | None]:
    """``(prior, class_prior, head_priors)`` of a file's inference metadata, checked
    against the model (a heads model: one prior per head, never a file-wide one)."""
    inference = metadata.get(MIRROR_KEY)
    given = inference if isinstance(inference, Mapping) else {}
    if isinstance(model, HeadsModel) and given.get("class_prior") is not None:
        raise PriorError(f"{path}: a heads model records one class prior per head, not one")
    if not isinstance(model, HeadsModel) and given.get(HEAD_PRIORS) is not None:
        raise PriorError(f"{path}: a single-path model records one class_prior, not per head")
    # read_prior refuses ``uniform`` without a class_prior or per-head priors
    prior, class_prior = read_prior(metadata, path, n_classes, MIRROR_KEY)
    if not isinstance(model, HeadsModel):
        return prior, class_prior, None
    counts = {n: len(c) for n, c in zip(model.names, model.head_classes, strict=True)}
    return prior, None, read_head_priors(metadata, path, counts, MIRROR_KEY)


_EDITED = "the file is damaged or was edited after it was written; use the file as exported"


def _content_digest(payload: Mapping[str, Any]) -> str:
    """sha256 over everything besides the tensors that changes a prediction (the
    weights enter through their own digest); descriptive metadata is left out."""
    covered = {key: payload.get(key) for key in _CONTENT_KEYS}
    metadata = payload.get("metadata") or {}
    covered["calibration"] = metadata.get("calibration")
    if MIRROR_KEY in metadata:  # files written before the setting keep their digest
        covered[MIRROR_KEY] = metadata[MIRROR_KEY]
    text = json.dumps(covered, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


_CONTENT_KEYS = ("model_kind", "model_config", "weights_sha256", "class_names",
                 "face_settings", "input")  # fmt: skip


def _kind_of(config: dict[str, Any]) -> str:
    """The model kind a path model's ``config_dict()`` describes."""

    formats = {
        LINEAR_FORMAT: MODEL_KIND,
        CONV_FORMAT: CONV_MODEL_KIND,
        BLOCK_FORMAT: BLOCK_MODEL_KIND,
        HEADS_FORMAT: HEADS_MODEL_KIND,
    }
    return formats.get(config.get("format"), f"unknown ({config.get('format')!r})")


def _rebuild(config: dict[str, Any], path: Path) -> nn.Module:
    """A fresh PathModel, ConvPathModel or BlockPathModel from its ``config_dict()``,
    weights loaded by the caller."""

    classes = {CONV_MODEL_KIND: ConvPathModel, BLOCK_MODEL_KIND: BlockPathModel}
    kind = _kind_of(config)
    try:
        if kind == HEADS_MODEL_KIND:
            heads = [h.get("config") for h in config.get("heads") or []]
            if any(_kind_of(h) == HEADS_MODEL_KIND for h in heads if isinstance(h, dict)):
                raise ValueError("a head cannot itself be a heads model")
            return HeadsModel.from_config(config, lambda c: _rebuild(c, path))
        return classes.get(kind, PathModel).from_config(config)
    except ModelFileError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{path}: cannot rebuild the model from its config: {exc}") from exc


def _check_model_shapes(model: nn.Module, spec: InputSpec, n_classes: int, *, where: str) -> None:
    """The network's input width and readout size must match the crops and the classes."""
    probe = torch.zeros(1, spec.input_dim, device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(probe)
    except RuntimeError as exc:
        raise ModelFileError(
            f"{where}: the network does not take {spec.describe()}: {str(exc).splitlines()[0]}"
        ) from exc
    finally:
        model.train(was_training)
    if tuple(out.shape) != (1, n_classes):
        raise ModelFileError(
            f"{where}: the network outputs {tuple(out.shape[1:])} scores for {n_classes} class "
            "names"
        )


def _weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, shapes, dtypes and bytes: detects bit rot in the stored tensors."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def jsonable(value: Any) -> Any:
    """Plain JSON types only, so the file loads with ``weights_only=True`` anywhere."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a model file's metadata")
