"""Who wrote something, and whether that process provably no longer runs (plain Python: the table layer marks
its staging folders with it, and run repair reads it from ``job_runs``)."""

from __future__ import annotations

import os
import socket


def driver_id() -> str:
    """This process as a driver: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def driver_gone(driver: str | None) -> bool:
    """True only when the driver provably no longer runs: same host, and no process with its pid."""
    if not driver or ":" not in driver:
        return False
    host, _, pid = driver.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
