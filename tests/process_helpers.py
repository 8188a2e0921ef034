"""Helpers for tests that start real processes (Ray, uvicorn, PostgreSQL, moto): poll, and find leftovers."""
from __future__ import annotations

import os
import subprocess

from services.polling import wait_for  # noqa: F401 - re-exported for the tests


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
