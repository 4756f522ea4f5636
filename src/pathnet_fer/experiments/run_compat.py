"""Whether a run directory may be (re)used for a config: a new directory gets its marker, a
run with the same results-deciding settings resumes, anything else is refused with the
differing keys (config_differences; settings that change no result, such as logging,
workers or the data root, are NON_RESULT_KEYS), and the folds must be the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.run_dir import (
    LOCK,
    MARKER,
    RunDirLockedError,
    RunLock,
    clear_run_dir,
    read_marker,
    write_marker,
)

# Settings that do not change any result: a resumed run may differ in these.
NON_RESULT_KEYS = {
    ("logging",),
    ("executor", "workers"),
    ("executor", "threads"),
    ("executor", "kind"),
    ("executor", "address"),
    ("executor", "scheduler_file"),
    ("executor", "retries"),
    ("executor", "connect_timeout"),
    ("executor", "worker_timeout"),
    ("protocol", "reuse_sources"),  # a reused source is the same result by its key
    ("cache_dir",),
    ("data_root",),
}


class RunDirError(ValueError):
    """The output directory holds a run of a different configuration."""


class RunDirInUseError(RunDirError):
    """Another live command holds the run directory's lock."""


def config_differences(a: Any, b: Any, where: tuple[str, ...] = ()) -> list[str]:
    if any(where[: len(k)] == k for k in NON_RESULT_KEYS):
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += config_differences(a.get(key), b.get(key), (*where, str(key)))
        return out
    return [] if a == b else [f"{'.'.join(where)}: {a!r} (run dir) != {b!r} (now)"]


def prepare_run_dir(
    config: ExperimentConfig, out: Path, restart: bool = False, lock: RunLock | None = None
) -> bool:
    """Create the run directory or check that it holds this config. Returns True on resume.

    With ``lock``, the directory's lock is taken before anything in it changes. Only a
    directory carrying the run marker (``.pathnet-fer-run``) is ever deleted.
    """
    saved = out / "config.yaml"
    marked = read_marker(out) is not None
    in_use = out.exists() and any(p.name != LOCK for p in out.iterdir())
    if in_use and not marked and not saved.exists():
        raise RunDirError(f"{out} exists and is not a pathnet-fer run directory; choose --out")
    if restart and in_use and not marked:
        raise RunDirError(
            f"{out} does not carry the marker pathnet-fer writes into its run directories "
            f"({MARKER}); refusing to delete it. Delete it yourself or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    if lock is not None:
        try:
            lock.acquire()
        except RunDirLockedError as err:
            raise RunDirInUseError(str(err)) from None
    if restart and marked:
        clear_run_dir(out)
    if saved.exists():
        import yaml

        diff = config_differences(yaml.safe_load(saved.read_text()), config.to_dict())
        if diff:
            hint = ", or --restart to discard that run" if marked else ""
            raise RunDirError(
                f"{out} holds a run with a different configuration:\n  "
                + "\n  ".join(diff)
                + f"\nUse another --out directory{hint}."
            )
        write_marker(out, config.name)  # run directories of older versions get one too
        return True
    saved.write_text(config.to_yaml())
    write_marker(out, config.name)
    return False


def check_same_folds(out: Path, plan: pd.DataFrame) -> None:
    """A resumed run must see the data it started with: same subjects, folds, samples.

    ``data_root`` may change between sessions (data moved), but a root with other
    content would train the remaining jobs on other data and folds, and the paired test
    would compare different test subjects: refused."""
    saved = out / "folds.csv"
    if not saved.exists():
        return
    old, new = saved.read_text(), plan.to_csv(index=False)
    if old == new:
        return
    a, b = set(old.splitlines()[1:]), set(new.splitlines()[1:])
    raise RunDirError(
        f"{out} was started on other data: its folds.csv and the folds of the data found "
        f"now differ in {len(a - b)} (run dir) / {len(b - a)} (now) rows (subjects, folds or "
        "sample counts). Point data_root at the data the run started with, or use another "
        "--out"
    )
