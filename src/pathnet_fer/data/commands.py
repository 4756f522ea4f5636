"""CLI sub-commands of the ``data`` stage."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's sub-commands (filled in by the stage's issue)."""
