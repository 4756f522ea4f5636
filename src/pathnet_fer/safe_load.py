"""Read torch files without executing code from them.

Every ``.pt`` file the tool reads (checkpoints, model files, weight files) may come from
someone else, so it is read with ``torch.load(..., weights_only=True)``: tensors and plain
Python containers only. A file holding any other Python object (a crafted pickle that would
run code, or a file of another program) is refused with a message saying so, never with
torch's hint to retry unsafely.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch.torch_version import TorchVersion

LEGACY_SAFE = [TorchVersion]
"""Classes older pathnet-fer versions wrote into checkpoints (``torch.__version__`` is a
``TorchVersion``, a plain ``str`` subclass with no behaviour on load): allowed so that
runs started before plain strings were stored still resume. Nothing else is."""


class UnsafeFileError(ValueError):
    """The file holds Python objects beyond tensors and plain containers."""


def load_plain(path: str | os.PathLike, what: str) -> Any:
    """``torch.load`` with ``weights_only=True``; a file needing any other class is refused.

    ``what`` names the kind of file in the message ("pathnet-fer checkpoint", ...).
    Other read errors (truncated, not a torch file) propagate unchanged to the caller.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise EOFError("the file is empty (0 bytes)")
    try:
        with torch.serialization.safe_globals(LEGACY_SAFE):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" not in str(exc).lower():
            raise
        detail = _unsupported_global(str(exc))
        if not detail:  # damaged or not a torch pickle at all: say why, without the hint
            raise pickle.UnpicklingError(_reason(str(exc))) from None
        raise UnsafeFileError(
            f"{path} is not a {what}: it holds Python objects{detail} that pathnet-fer "
            "never writes, so it was not loaded (loading it could run code from the file)"
        ) from None


def _unsupported_global(message: str) -> str:
    """`` (io.open)`` from torch's message when the file needs a class, else ``""``."""
    marker = "Unsupported global: GLOBAL "
    at = message.find(marker)
    if at < 0:
        return ""
    name = message[at + len(marker) :].split()[0]
    return f" ({name[:80]})"


def _reason(message: str) -> str:
    """The unpickler's own complaint, without torch's advice to load unsafely."""
    tail = message.partition("WeightsUnpickler error:")[2]
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[0][:200] if lines else "not a torch file"
