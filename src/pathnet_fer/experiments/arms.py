"""The arms of a study and what each means to the machinery, in one place.

A job's ``arm`` (also a column of metrics.csv) is one of these names. Planning, running,
exporting and calibrating ask the arm what it is instead of comparing names:

- ``source``: a unit evolved once and shared by every set that starts from it (its own
  driver, sources.py, and the source store);
- ``transfer``: the chain's later links on top of the source units' fixed paths, on each
  fold's training subjects (held-out subjects scored; after the chain, the earlier links
  are scored again: forgetting, zero-shot);
- ``scratch``: one link from scratch, one job per link, on each fold's training subjects;
- ``final``: the chain again on every subject, for the model a user deploys (nothing
  held out, so no held-out figure, and its rows stay out of metrics.csv).

metrics.csv also holds ``zero-shot`` rows (no job: the source units' path scored on a
destination's held-out faces after a transfer chain) and the baselines' own arm names.
What the report and calibration need to know of an arm is named here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Arm:
    name: str
    shared_unit: bool = False  # a source unit, shared by the sets that start from it
    from_source: bool = False  # starts from the source units' fixed paths (a chain)
    holds_out: bool = True  # its runs score held-out subjects (final: none held out)
    one_link: bool = False  # a job per link (scratch), not the whole chain

    @property
    def output_dir(self) -> str:
        """Where its jobs' metric parts go: ``parts`` (merged into metrics.csv), or
        ``final`` (a final fit's rows, no held-out figure, kept apart)."""
        return "parts" if self.holds_out else "final"

    @property
    def chains_folds(self) -> bool:
        """A chain run on each fold's training subjects (transfer): its iterations can
        chain fold by fold, and after it the earlier links are scored again on held-out
        subjects (forgetting, zero-shot)."""
        return self.from_source and self.holds_out


SOURCE = Arm("source", shared_unit=True)
TRANSFER = Arm("transfer", from_source=True)
SCRATCH = Arm("scratch", one_link=True)
FINAL = Arm("final", from_source=True, holds_out=False)
ARMS = {a.name: a for a in (SOURCE, TRANSFER, SCRATCH, FINAL)}


def arm_of(name: str) -> Arm:
    """The arm a job, phase or metric row names."""
    try:
        return ARMS[name]
    except KeyError:
        raise ValueError(f"unknown arm {name!r} (arms: {', '.join(ARMS)})") from None


ZERO_SHOT = "zero-shot"
"""Rows of no job: the source path and readout alone on a destination's held-out faces."""
PATHNET_ROWS: tuple[str, ...] = (SOURCE.name, TRANSFER.name, SCRATCH.name, ZERO_SHOT)
"""The arms PathNet writes to metrics.csv, in the report's order (baselines after them)."""
PAIRED: tuple[Arm, Arm] = (TRANSFER, SCRATCH)
"""The report's paired test, the first minus the second per fold; the first of them found
is also the budget every other row of the report is held to."""
CALIBRATES_FINAL: Arm = TRANSFER
"""The arm whose folds' held-out predictions fit a final fit's temperatures: the same chain
(``chains_folds``) on each fold's training subjects."""
assert CALIBRATES_FINAL.chains_folds


def rows_of(frame: pd.DataFrame, arm: Arm | str) -> pd.DataFrame:
    """The rows of ``frame`` (any table with an ``arm`` column) that ``arm`` wrote."""
    name = arm.name if isinstance(arm, Arm) else arm
    return frame[frame["arm"] == name]


def is_shared_unit(name: str) -> bool:
    """Rows of a source unit (another task than the sets' links); False for an arm this
    module does not know (a baseline's)."""
    return name in ARMS and ARMS[name].shared_unit
