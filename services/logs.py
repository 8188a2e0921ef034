"""Logs a person can read: one place that quiets Ray's known noise and keeps colour codes out of files.

Every job (`python -m services.generator|trainer|evaluator`) calls `configure_job_logs()` first. Under
`ray job submit` or the control plane the job's own process is the Ray driver, so what it prints is the
job's log: filtering here cleans the terminal, the job log and the web UI's log tail alike.

What is dropped, and why it is safe to drop (Ray 2.60, seen on every successful run):
- Ray Train V2's PlacementGroupCleaner, a safety net for a crashed controller (a run that ends removes its
  placement group itself), polls the state API, which needs the dashboard our local Ray runs without:
  "Failed to query Ray Train Controller actor state", up to once a second. On a busy machine the cleaner
  may exit early ("Failed to register placement group with cleaner"), and when Ray shuts down its thread
  dies with an `RpcError` traceback ("Timed out while waiting for GCS"), is slow to stop ("Monitor thread
  did not exit within 12.00 seconds"), or the controller fails to stop it ("Failed to stop
  PlacementGroupCleaner gracefully" with a `GetTimeoutError` traceback). Every line naming it is dropped.
- Its autoscaling client logs "Failed to send resource request" with a `GetTimeoutError` traceback when
  the CPUs are busy; its own message says it is safe to ignore.
- "Found multiple active Ray instances": the state API's address lookup sees other Ray clusters on the
  same machine; our jobs always name theirs.
- core_worker's "PreemptionWatcher ... has constructor arguments in the object store" (a Ray-internal
  actor) and the worker-group listing lines Ray Train prints at every start.
- "Token authentication is enabled for this Ray cluster": Ray 2.60's default, said once per process.
A dropped line's traceback goes with it. Everything else, warnings and errors included, passes through.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from typing import Callable, Iterable

NOISE = (
    "Failed to query Ray Train Controller actor state",
    "PlacementGroupCleaner",  # its thread's exit, "Failed to stop/launch PlacementGroupCleaner ...", ...
    "Failed to register placement group with cleaner",
    "Monitor thread did not exit within",
    "Failed to send resource request",
    "Found multiple active Ray instances",
    "'PreemptionWatcher'",
    "Token authentication is enabled for this Ray cluster",
    "Setting up process group for: env://",
    "Started training worker group of size",
    ") world_rank=",
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TRACEBACK_LINE = re.compile(r"^(\s|Traceback \(most recent call last\)|During handling|The above exception|"
                             r"The actor is dead because|[\w.]+(Error|Exception|Exit|Interrupt)\b|$)")
# Driver-side loggers that say the same things before any worker does.
_RAY_LOGGERS = ("ray._private.authentication.authentication_token_setup", "ray._private.services")


def is_noise(line: str) -> bool:
    return any(marker in line for marker in NOISE)


def filter_lines(lines: Iterable[str], in_traceback: bool = False) -> tuple[list[str], bool]:
    """Lines without Ray's known noise (and without the traceback that follows a noisy line); returns the
    kept lines and whether the input ended inside a dropped traceback (for the next batch of one process)."""
    kept = []
    for line in lines:
        if is_noise(line):
            in_traceback = True
            continue
        if in_traceback and _TRACEBACK_LINE.match(line):
            continue
        in_traceback = False
        kept.append(line)
    return kept, in_traceback


class _NoiseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not is_noise(record.getMessage())


def _filtered_printer(print_worker_logs: Callable, strip_ansi: bool) -> Callable:
    """Wrap Ray's driver-side printer of worker output (`ray._private.worker.print_worker_logs`)."""
    in_traceback: dict[object, bool] = {}

    def print_filtered(data: dict, print_file, ignore_prefix: bool = False):
        key = (data.get("pid"), data.get("is_err"))
        lines, in_traceback[key] = filter_lines(data.get("lines", []), in_traceback.get(key, False))
        if strip_ansi:
            lines = [ANSI.sub("", line) for line in lines]
        if lines:
            print_worker_logs({**data, "lines": lines}, print_file, ignore_prefix)

    print_filtered.__wrapped__ = print_worker_logs
    return print_filtered


def configure_job_logs(stream=None, with_ray: bool = True) -> None:
    """Quiet Ray's known noise in this process and its workers' forwarded output; no colour codes when
    `stream` (default stdout) is not a terminal. Call before `ray.init`; calling twice is harmless."""
    stream = stream or sys.stdout
    terminal = hasattr(stream, "isatty") and stream.isatty()
    if not terminal:
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # Ray's driver colours "(Actor pid=...)" prefixes
        os.environ.setdefault("NO_COLOR", "1")
    noise = _NoiseFilter()
    for name in _RAY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoiseFilter) for f in logger.filters):
            logger.addFilter(noise)
    if not with_ray:
        return
    try:
        import ray._private.worker as ray_worker
    except ImportError:
        return
    printer = getattr(ray_worker, "print_worker_logs", None)
    if printer is not None and not hasattr(printer, "__wrapped__"):
        ray_worker.print_worker_logs = _filtered_printer(printer, strip_ansi=not terminal)
