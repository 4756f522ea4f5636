"""The ``pathnet-fer`` command. Each pipeline stage registers its own sub-commands."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from pathnet_fer import __version__

# Each module exposes ``register(subparsers)``; it adds parsers whose ``func`` runs them.
COMMAND_MODULES = (
    "pathnet_fer.data.commands",
    "pathnet_fer.faces.commands",
    "pathnet_fer.experiments.commands",
    "pathnet_fer.baselines.commands",
    "pathnet_fer.predict.commands",
    "pathnet_fer.pretrained.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pathnet-fer",
        description="PathNet transfer learning for facial emotion recognition on video.",
    )
    parser.add_argument("--version", action="version", version=f"pathnet-fer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` & co.: stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as error:
        message = storage_error(error)
        if message is None or os.environ.get("PATHNET_FER_DEBUG"):
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


_STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EIO: "input/output error (failing disk or network file system?)",
}


def storage_error(error: OSError) -> str | None:
    """One line for an error of the storage under a file (disk full, read-only, ...)."""
    what = _STORAGE_ERRNOS.get(error.errno or 0)
    if what is None:
        return None
    where = f" at {error.filename}" if error.filename else ""
    return (
        f"{what}{where}: free space or fix the permissions, then re-run the same command "
        "(finished work is kept)"
    )


if __name__ == "__main__":
    sys.exit(main())
