"""Pool workers end when their coordinator is killed (kill -9), idle or not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

_COORDINATOR = textwrap.dedent(
    """
    import os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    from pathlib import Path

    if __name__ == "__main__":
        which = sys.argv[1]
        if which == "experiments":
            from pathnet_fer.experiments.executor import _init_worker
            args = (1,)
        else:
            from pathnet_fer.faces.extraction_pool import _init_pool_worker as _init_worker
            from pathnet_fer.faces.settings import FaceSettings
            args = (FaceSettings(detect=False), sys.argv[2], "ckplus48", 1)
        pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_init_worker,
                                   initargs=args)
        print(pool.submit(os.getpid).result(), flush=True)
        time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("which", ["experiments", "preprocess"])
def test_workers_exit_when_the_coordinator_is_killed(which, tmp_path) -> None:
    script = tmp_path / "coordinator.py"
    script.write_text(_COORDINATOR)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    coordinator = subprocess.Popen(
        [sys.executable, str(script), which, str(tmp_path / "cache")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    worker = None
    try:
        worker = int(coordinator.stdout.readline())
        assert _alive(worker)
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait()
        deadline = time.monotonic() + 15
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), f"worker {worker} outlived its killed coordinator"
    finally:
        coordinator.kill()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_the_command_itself_never_watches_its_parent() -> None:
    """Under nohup the shell may end first: only pool workers exit with their parent."""
    import threading

    from pathnet_fer.parent_watch import exit_with_parent

    exit_with_parent()
    assert not any(t.name == "exit-with-parent" for t in threading.enumerate())
