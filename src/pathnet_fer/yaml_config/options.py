"""The ``--set KEY=VALUE`` option every command that reads a config shares."""

from __future__ import annotations

import argparse


def add_set_option(p: argparse.ArgumentParser, example: str = "evolution.generations=200") -> None:
    """``--set KEY=VALUE`` (repeatable): config overrides, shared by every config command."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value (repeatable), e.g. {example}",
    )
