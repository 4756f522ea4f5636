"""Progress of a job: a tqdm bar on a terminal plus a small JSON file the coordinator
reads for the overall bar (jobs may run in other processes or on other machines)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


class JobProgress:
    """Per-job tqdm bar plus a small JSON file the coordinator reads for the overall bar."""

    def __init__(self, path: Path, total: int, desc: str, enabled: bool, position: int):
        from tqdm.auto import tqdm

        self.path, self.total, self.done = path, total, 0
        # Per-job bars only on a terminal: in logs, several processes' bars are noise.
        enabled = enabled and sys.stderr.isatty()
        self.bar = tqdm(
            total=total,
            desc=desc,
            unit="gen",
            disable=not enabled,
            position=position,
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=1.0,
        )
        self._last = 0.0

    def set(self, done: int) -> None:
        self.bar.update(done - self.done)
        self.done = done
        now = time.monotonic()
        if now - self._last > 0.5 or done >= self.total:
            self._last = now
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"done": done, "total": self.total}))
            tmp.replace(self.path)

    def close(self) -> None:
        self.bar.close()
