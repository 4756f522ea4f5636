"""Predict: model files, the streaming predictor, the ``pathnet-fer predict`` CLI.

``save_model`` / ``load_model`` (model_file), ``Predictor`` (predictor), the documented
table columns (columns) and per-file summaries (summary). Imported lazily so that the
CLI starts fast and ``save_model`` does not pull in the video stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "save_model": "model_file",
    "save_path_model": "model_file",
    "load_model": "model_file",
    "LoadedModel": "model_file",
    "ModelFileError": "model_file",
    "Predictor": "predictor",
    "PredictionResult": "predictor",
    "summarise": "summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"pathnet_fer.predict.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'pathnet_fer.predict' has no attribute {name!r}")
