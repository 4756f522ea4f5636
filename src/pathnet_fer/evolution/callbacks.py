"""Ready-made generation callbacks: a progress bar and a wall-clock budget."""

from __future__ import annotations

import time

from pathnet_fer.evolution.events import GenerationEvent


class ProgressBar:
    """tqdm bar over the task's generations showing mean fitness and loss over runs."""

    def __init__(self, desc: str | None = None, every: int = 1, disable: bool = False) -> None:
        self.desc, self.every, self.disable = desc, max(1, every), disable
        self._bar = None

    def __call__(self, event: GenerationEvent) -> None:
        from tqdm.auto import tqdm

        if self._bar is None:
            total = event.task.config.generations
            self._bar = tqdm(
                total=total,
                initial=event.generation - 1,
                desc=self.desc or event.task.name,
                disable=self.disable,
                unit="gen",
            )
        self._bar.update(1)
        if event.generation % self.every == 0:
            self._bar.set_postfix(
                fitness=f"{float(event.fitness.mean()):.3f}", loss=f"{float(event.loss.mean()):.3f}"
            )
        if event.generation >= event.task.config.generations or event.stop_requested:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class TimeBudget:
    """Stop the task after ``seconds`` of wall time (the paper trains each task for "a
    fixed period of time"); the generation count reached is in ``task.generation``."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("seconds must be > 0")
        self.seconds = seconds
        self._start: float | None = None

    def __call__(self, event: GenerationEvent) -> None:
        now = time.perf_counter()
        if self._start is None:
            self._start = now - event.seconds
        if now - self._start >= self.seconds:
            event.request_stop()
