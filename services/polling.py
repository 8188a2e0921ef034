"""Waiting on something another process does (a server starting, a job ending): one polling loop."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(fn: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.5):
    """Poll `fn` until it returns something truthy; TimeoutError naming `what` (and the last answer) otherwise.
    An exception from `fn` counts as "not yet": the other side may be starting or restarting."""
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
