"""Minibatch sampling: one shuffled stream per run, like ``DataLoader(shuffle=True)``.

Each path takes the next ``minibatches * batch_size`` rows of its run's stream. The
stream is a random permutation of the run's training rows, redrawn when exhausted:
every sample is seen once before any repeats (without replacement within a pass; a
path's 50 minibatches may straddle two passes, and with fewer rows than 800 a path
sees some rows twice). Drawn on the CPU generator: device-independent and resumable.
"""

from __future__ import annotations

from typing import Any

import torch


class MinibatchStreams:
    """Per-run shuffled row streams; state is checkpointed so resuming is exact."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = list(sizes)
        self.perms: list[torch.Tensor | None] = [None] * len(sizes)
        self.cursors = [0] * len(sizes)

    def take(self, run: int, count: int, generator: torch.Generator) -> torch.Tensor:
        """The next ``count`` row indices (local to the run) of run ``run``'s stream."""
        out = []
        need = count
        while need > 0:
            perm = self.perms[run]
            if perm is None or self.cursors[run] >= perm.numel():
                perm = torch.randperm(self.sizes[run], generator=generator)
                self.perms[run] = perm
                self.cursors[run] = 0
            start = self.cursors[run]
            piece = perm[start : start + need]
            out.append(piece)
            self.cursors[run] += piece.numel()
            need -= piece.numel()
        return torch.cat(out) if len(out) > 1 else out[0]

    def state(self) -> dict[str, Any]:
        return {
            "sizes": list(self.sizes),
            "perms": [p.clone() if p is not None else None for p in self.perms],
            "cursors": list(self.cursors),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MinibatchStreams:
        s = cls(state["sizes"])
        s.perms = [p.clone() if p is not None else None for p in state["perms"]]
        s.cursors = list(state["cursors"])
        return s
