"""``python -m pathnet_fer.experiments experiment|demo|report ...``: this stage's commands
without importing every other stage's CLI (faster start for workers and scripts)."""

from __future__ import annotations

import argparse
import sys

from pathnet_fer.experiments.commands import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pathnet_fer.experiments")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
