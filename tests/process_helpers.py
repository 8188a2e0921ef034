"""Helpers for tests that start real processes (Ray, uvicorn, PostgreSQL, moto): poll, and find leftovers."""
from __future__ import annotations

import os
import subprocess
import time
from typing import Any, Callable


def wait_for(fn: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.5):
    """Poll `fn` until it returns something truthy; TimeoutError naming `what` (and the last answer) otherwise."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - keep polling until the deadline
            last = e
        time.sleep(interval_s)
    raise TimeoutError(f"{what} after {timeout_s:.0f} s (last: {last!r})")


def pids_mentioning(marker: str) -> list[int]:
    """Processes whose command line contains `marker` (e.g. the private temp dir of a Ray we started)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def stop(proc: subprocess.Popen, timeout_s: float = 20) -> None:
    """SIGTERM a process we started, SIGKILL it if it has not exited after `timeout_s`."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
