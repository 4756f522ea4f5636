"""Worker processes end when the process that started them dies.

A pool worker that outlives its coordinator (``kill -9`` of the command) would keep
writing into a run directory that a resumed command now owns, then sit idle forever.
``exit_with_parent()``, called first in every worker's initializer, starts a daemon thread
that checks ``os.getppid()`` every ``interval`` seconds and ends the process
(``os._exit``) once the parent is gone: an orphan is re-parented to init or a subreaper,
so its parent pid changes. (``prctl(PR_SET_PDEATHSIG)`` is not used: it fires when the
parent *thread* that started the worker ends, which is not the parent's death.)
"""

from __future__ import annotations

import multiprocessing
import os
import threading

EXIT_CODE = 70  # "internal software error": the parent vanished under us


def exit_with_parent(interval: float = 1.0) -> None:
    """Make this process end soon after its parent process ends.

    Only in a process started by ``multiprocessing`` (a pool worker): elsewhere (the
    command itself, whose parent is a shell that may end first under ``nohup``) it does
    nothing."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    expected = parent.pid or os.getppid()
    if os.getppid() != expected:  # the parent died before this worker got here
        os._exit(EXIT_CODE)
    threading.Thread(
        target=_watch, args=(expected, interval), name="exit-with-parent", daemon=True
    ).start()


def _watch(parent: int, interval: float) -> None:
    wake = threading.Event()
    while not wake.wait(interval):
        if os.getppid() != parent:
            os._exit(EXIT_CODE)
