"""File-name-safe versions of experiment names (no heavy imports: config uses it)."""

from __future__ import annotations

import re


def slug(text: str) -> str:
    """A file-name-safe version of an experiment name (``ckplus48->jaffe`` -> ``ckplus48-to-jaffe``)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text.replace("->", "-to-")).strip("-")
