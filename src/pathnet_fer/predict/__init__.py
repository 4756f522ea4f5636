"""Predict: model files, the streaming predictor, the ``pathnet-fer predict`` CLI.

``save_model`` / ``load_model`` (``pathnet_fer.formats.model_file``), ``Predictor`` (predictor), the documented
table columns (columns) and per-file summaries (summary). Imported lazily so that the
CLI starts fast and ``save_model`` does not pull in the video stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "save_model": "pathnet_fer.formats.model_file",
    "save_path_model": "pathnet_fer.formats.model_file",
    "load_model": "pathnet_fer.formats.model_file",
    "LoadedModel": "pathnet_fer.formats.model_file",
    "ModelFileError": "pathnet_fer.formats.model_file",
    "Predictor": "pathnet_fer.predict.predictor",
    "PredictionResult": "pathnet_fer.predict.predictor",
    "summarise": "pathnet_fer.predict.summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        return getattr(module, name)
    raise AttributeError(f"module 'pathnet_fer.predict' has no attribute {name!r}")
