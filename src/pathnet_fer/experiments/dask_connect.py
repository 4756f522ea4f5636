"""Joining a running Dask scheduler: every wait bounded, every mistake one line.

``distributed.Client`` alone polls for a missing scheduler file for ever, hangs on a port
that accepts connections but never speaks the Dask protocol (the dashboard's HTTP port),
fails with a bare ``AssertionError`` on a scheduler file that is not JSON, and a study
on a scheduler without workers would wait silently for ever. Here the file is read and
checked first, a ``tcp://`` address is probed (a Dask scheduler speaks first: it sends
its handshake as soon as a connection is accepted), and the workers are awaited, each
within a bound from the config (``executor.connect_timeout``, ``executor.worker_timeout``)
and each failure is a :class:`DaskConnectError` with one line saying what to fix.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_CONNECT_TIMEOUT_S = 60.0
DEFAULT_WORKER_TIMEOUT_S = 300.0
HANDSHAKE_S = 5.0  # a scheduler sends its handshake at once; longer silence: not one
_POLL_S = 0.2


class DaskConnectError(RuntimeError):
    """The scheduler named by the config cannot be used; the message says why."""


def _short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_scheduler_file(path: str | Path, timeout: float, log: Callable[[str], None]) -> str:
    """The scheduler address in a ``dask scheduler --scheduler-file`` JSON file.

    A missing (or still empty) file is waited for at most ``timeout`` seconds (a
    scheduler started a moment ago writes it soon); a file that is not a scheduler file
    is refused at once (after a second's grace for one being written).
    """
    path = Path(path).expanduser()
    start = time.monotonic()
    deadline, said = start + timeout, False
    while True:
        problem = None
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = None
        except IsADirectoryError:
            raise DaskConnectError(f"scheduler file {path} is a directory") from None
        except OSError as err:
            raise DaskConnectError(f"cannot read scheduler file {path}: {err}") from None
        if text:
            try:
                info = json.loads(text)
            except ValueError:
                info = None
            address = info.get("address") if isinstance(info, dict) else None
            if isinstance(address, str) and address:
                return address
            problem = (
                f"scheduler file {path} is not a Dask scheduler file (JSON with an "
                f'"address", as `dask scheduler --scheduler-file` writes); it starts '
                f"{_short(text[:60])}"
            )
            if time.monotonic() - start >= min(1.0, timeout):
                raise DaskConnectError(problem)
        if time.monotonic() >= deadline:
            if problem:
                raise DaskConnectError(problem)
            what = "is empty" if text == "" else "does not exist"
            raise DaskConnectError(
                f"scheduler file {path} {what} (waited {timeout:g} s, "
                "executor.connect_timeout): start the scheduler with `dask scheduler "
                f"--scheduler-file {path}` on storage this machine sees, or fix the path"
            )
        if not said and text is None:
            log(f"dask: waiting up to {timeout:g} s for the scheduler file {path}")
            said = True
        time.sleep(_POLL_S)


def probe_address(address: str, timeout: float) -> None:
    """Refuse a ``tcp://`` address that nothing answers, or that is not a scheduler.

    Connection refused is retried until ``timeout`` (a scheduler may be starting). A
    peer that accepts but stays silent is asked for HTTP, to name the usual mistake (the
    dashboard's port). Other protocols (``tls://``, ``ucx://``) are left to Dask.
    """
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return
    host, _, port_text = rest.rpartition(":")
    host = host.strip("[]") or "localhost"
    try:
        port = int(port_text.split("/")[0])
    except ValueError:
        raise DaskConnectError(
            f"Dask scheduler address {_short(address)} has no port (tcp://host:8786)"
        ) from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=max(0.1, min(5.0, timeout)))
            break
        except OSError as err:
            if time.monotonic() >= deadline:
                raise DaskConnectError(
                    f"cannot reach the Dask scheduler at {address}: "
                    f"{err.strerror or err} (tried for {timeout:g} s, "
                    "executor.connect_timeout); is it running, and is this its address?"
                ) from None
            time.sleep(_POLL_S)
    with sock:
        wait = max(0.1, min(HANDSHAKE_S, deadline - time.monotonic()))
        sock.settimeout(wait)
        try:
            first = sock.recv(1)
        except TimeoutError:
            first = None
        except OSError:
            first = b""
        if first:
            return  # it spoke first, as a Dask scheduler does
        if first == b"":
            raise DaskConnectError(
                f"{address} closed the connection without the Dask handshake: not a Dask "
                "scheduler (its default port is 8786)"
            )
        try:
            sock.settimeout(1.0)
            sock.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
            http = sock.recv(5) == b"HTTP/"
        except OSError:
            http = False
    if http:
        raise DaskConnectError(
            f"{address} is a web server (HTTP), not a Dask scheduler: probably the "
            "dashboard (default port 8787); give the scheduler's address (default port "
            "8786, `tcp://...` in the scheduler's log or scheduler file)"
        )
    raise DaskConnectError(
        f"{address} accepted the connection but sent no Dask handshake within {wait:g} s: "
        "not a Dask scheduler (default port 8786), or one too busy to answer"
    )


def connect(
    address: str | None,
    scheduler_file: str | None,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT_S,
    log: Callable[[str], None] = print,
) -> Any:
    """A ``distributed.Client`` of a running scheduler with at least one worker.

    Raises :class:`DaskConnectError` (one line) after at most about ``connect_timeout``
    seconds for the scheduler and ``worker_timeout`` more for a first worker.
    """
    from distributed import Client

    if scheduler_file:
        address = read_scheduler_file(scheduler_file, connect_timeout, log)
    if not address:
        raise DaskConnectError("no Dask scheduler given (executor.address or scheduler_file)")
    probe_address(address, connect_timeout)
    try:
        client = Client(address, timeout=f"{connect_timeout}s")
    except (OSError, TimeoutError) as err:
        raise DaskConnectError(f"cannot reach the Dask scheduler at {address}: {err}") from None
    try:
        if not client.scheduler_info(n_workers=-1).get("workers"):
            log(
                f"dask: the scheduler at {address} has no workers yet; waiting up to "
                f"{worker_timeout:g} s (executor.worker_timeout)"
            )
            client.wait_for_workers(1, timeout=worker_timeout)
    except (TimeoutError, OSError):
        client.close()
        raise DaskConnectError(
            f"the Dask scheduler at {address} has no workers (waited {worker_timeout:g} s, "
            f"executor.worker_timeout): start some (`dask worker {address}`), or give "
            "them longer"
        ) from None
    except BaseException:
        client.close()
        raise
    return client
