"""What the shipped model file says about itself (``metadata.pretrained``): the recipe's
resolved config, the figures measured at build time, the summary ``predict --info``
prints. Apart from ``pretrained/__init__.py``, so that locating the file (and every
``pathnet_fer.pretrained.*`` import, such as the CLI's) loads no torch.
"""

from __future__ import annotations

import os
from typing import Any

from pathnet_fer.formats.model_file import load_model
from pathnet_fer.pretrained import pretrained_path


def pretrained_info(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """``metadata.pretrained`` of the shipped model (or of ``path``); {} when absent."""
    model = load_model(path or pretrained_path())
    return dict(model.metadata.get("pretrained") or {})


def summary(path: str | os.PathLike | None = None) -> str | None:
    """The card's summary stored in the model file (what ``predict --info`` prints); None
    for a model file without one."""
    text = pretrained_info(path).get("summary")
    return str(text) if text else None
