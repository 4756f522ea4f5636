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
"""

from __future__ import annotations

from dataclasses import dataclass


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
