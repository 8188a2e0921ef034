"""Live progress: counts and rates (pure `ProgressTracker`), shown as a tqdm bar and a status JSON.

The status object (`schemas.GenerationStatus`) is written to `<set>/_status.json` every few seconds, so
the control plane can follow a job by reading the store, whether the job runs locally or under
`ray job submit`.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Callable

from schemas.generation_status import GenerationStatus, JobState
from schemas.manifest import ReasonCounts

log = logging.getLogger(__name__)


class ProgressTracker:
    """Counts of this run; rates and ETA computed on demand (no I/O)."""

    def __init__(self, set_name: str, set_uri: str, total_items: int, total_shards: int,
                 resumed_items: int = 0, committed_shards: int = 0, clock: Callable[[], float] = time.monotonic):
        self.set_name, self.set_uri = set_name, set_uri
        self.total_items, self.total_shards = total_items, total_shards
        self.resumed_items, self.committed_shards = resumed_items, committed_shards
        self.clock = clock
        self.started = clock()
        self.started_at = datetime.now(timezone.utc)
        self.seen = self.generated = self.accepted = self.rejected = 0
        self.errors = ReasonCounts()

    def resume(self, resumed_items: int, committed_shards: int) -> None:
        """Count what earlier runs finished, and start the clock for this run's rates now."""
        self.resumed_items, self.committed_shards = resumed_items, committed_shards
        self.started = self.clock()

    def add_read(self, seen: int, errored: ReasonCounts) -> None:
        self.seen += seen
        self.errors.merge(errored)

    def add_batch(self, items: int, accepted: int) -> None:
        self.generated += items
        self.accepted += accepted
        self.rejected += items - accepted

    def add_commit(self) -> None:
        self.committed_shards += 1

    @property
    def done_items(self) -> int:
        """Items finished in this run: generated, or errored while reading."""
        return self.generated + self.errors.total

    def status(self, state: JobState = "running", manifest_uri: str | None = None, message: str = "") -> GenerationStatus:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done_items / elapsed
        remaining = self.total_items - self.resumed_items - self.done_items
        return GenerationStatus(
            state=state, set_name=self.set_name, set_uri=self.set_uri, manifest_uri=manifest_uri, message=message,
            total_items=self.total_items, done_items=self.resumed_items + self.done_items,
            resumed_items=self.resumed_items, total_shards=self.total_shards, committed_shards=self.committed_shards,
            seen=self.seen, accepted=self.accepted, rejected=self.rejected, errored=self.errors.total,
            errors=dict(self.errors.reasons), samples_per_s=round(rate, 3),
            acceptance_rate=round(self.accepted / self.generated, 4) if self.generated else 0.0,
            eta_s=round(remaining / rate, 1) if rate > 0 and remaining > 0 else (0.0 if remaining <= 0 else None),
            elapsed_s=round(elapsed, 3), started_at=self.started_at, updated_at=datetime.now(timezone.utc))


class ProgressReporter:
    """Pushes a tracker's state to the terminal (tqdm), the store (`write_status`) and an optional callback."""

    def __init__(self, tracker: ProgressTracker, write_status: Callable[[GenerationStatus], None] | None = None,
                 show_bar: bool = True, interval_s: float = 2.0,
                 on_progress: Callable[[GenerationStatus], None] | None = None, log_interval_s: float | None = None):
        self.tracker = tracker
        self.write_status = write_status
        self.interval_s = interval_s
        self.on_progress = on_progress
        self.log_interval_s = None if show_bar else log_interval_s  # log lines stand in for the bar (ray job logs)
        self._last_write = self._last_log = float("-inf")
        self._bar = None
        if show_bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=tracker.total_items, initial=tracker.resumed_items, unit="img",
                             desc=tracker.set_name, dynamic_ncols=True)

    def update(self, force: bool = False, state: JobState = "running") -> GenerationStatus:
        status = self.tracker.status(state)
        if self._bar is not None:
            self._bar.n = status.done_items
            self._bar.set_postfix(accept=f"{status.acceptance_rate:.0%}", errors=status.errored,
                                  shards=f"{status.committed_shards}/{status.total_shards}", refresh=False)
            self._bar.refresh()
        if self.on_progress is not None:
            self.on_progress(status)
        now = time.monotonic()
        if force or now - self._last_write >= self.interval_s:
            self._last_write = now
            self._write(status)
        if self.log_interval_s is not None and now - self._last_log >= self.log_interval_s:
            self._last_log = now
            log.info("%s", describe(status))
        return status

    def _write(self, status: GenerationStatus) -> None:
        if self.write_status is None:
            return
        try:
            self.write_status(status)
        except Exception as e:  # noqa: BLE001 - progress must never kill the job
            log.warning("could not write status: %s", e)

    def close(self, state: JobState, manifest_uri: str | None = None, message: str = "") -> GenerationStatus:
        status = self.tracker.status(state, manifest_uri, message)
        if self.log_interval_s is not None:
            log.info("%s", describe(status))
        if self._bar is not None:
            self._bar.n = status.done_items
            self._bar.close()
        if self.on_progress is not None:
            self.on_progress(status)
        self._write(status)
        return status


def describe(status: GenerationStatus) -> str:
    """One line for logs: `120/1000 images (12%), 35.2 images/s, accepted 61%, 2 errors, ETA 25 s`."""
    pct = status.done_items / status.total_items if status.total_items else 1.0
    eta = "?" if status.eta_s is None else f"{status.eta_s:.0f} s"
    return (f"{status.state}: {status.done_items}/{status.total_items} images ({pct:.0%}), "
            f"{status.samples_per_s:.1f} images/s, accepted {status.acceptance_rate:.0%}, "
            f"{status.errored} errors, shards {status.committed_shards}/{status.total_shards}, ETA {eta}")
