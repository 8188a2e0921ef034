"""Keep the catalog in step with Ray and the store, in one background thread.

Each tick: refresh the status of runs Ray is still working on; index the sample set of a generate run that
succeeded (and any published set the catalog does not know yet); index the results of eval runs that
succeeded. Indexing a big set takes a while, which is why it happens here and not in a request.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from services.api.catalog import crud
from services.api.catalog.ingest import index_results, index_sample_set
from services.api.images import UnsafePath
from services.api.launcher import Launcher, RayUnavailable
from services.api.run_control import RunContext, refresh_run
from services.api.store import Store, sha256_bytes

log = logging.getLogger(__name__)


class CatalogSync:
    def __init__(self, sessions: sessionmaker[Session], store: Store, launcher: Callable[[], Launcher],
                 interval_s: float = 2.0):
        self.sessions, self.store, self.launcher, self.interval_s = sessions, store, launcher, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failed_sets: dict[str, str] = {}   # set id -> manifest sha that failed to index (not retried)
        self._first = True

    # -- one tick ------------------------------------------------------------------------------------------------
    def run_once(self) -> None:
        with self._lock, self.sessions() as session:
            ctx = RunContext(session, self.store, self.launcher(), job_python="", job_env={})
            self._refresh_runs(ctx)
            self._index_sets(session)
            self._index_results(session)
            self._first = False

    def _refresh_runs(self, ctx: RunContext) -> None:
        runs = crud.active_runs(ctx.session)
        if not self._first:
            runs = [r for r in runs if r.status != "UNKNOWN"]  # asked once after startup/rebuild
        for run in runs:
            try:
                refresh_run(ctx, run)
            except RayUnavailable as e:
                log.debug("status refresh skipped: %s", e)
                return

    def _index_sets(self, session: Session) -> None:
        known = crud.sample_set_versions(session)
        producers = {r.sample_set_id: r for r in crud.list_runs(session, kind="generate", limit=100_000)[0]}
        for set_id in self.store.list_set_ids():
            producer = producers.get(set_id)
            if set_id in known and not _finished_after_indexing(session, set_id, producer):
                continue
            data = self.store.manifest_bytes(set_id)
            if data is None:
                continue
            sha = sha256_bytes(data)
            if sha in (known.get(set_id), self._failed_sets.get(set_id)):
                continue
            try:
                s = index_sample_set(session, self.store, set_id, run_id=producer.id if producer else None)
                log.info("indexed sample set %s (%d rows)", set_id, s.num_rows)
            except (ValueError, OSError, UnsafePath) as e:
                session.rollback()
                self._failed_sets[set_id] = sha
                log.error("cannot index sample set %s: %s", set_id, e)

    def _index_results(self, session: Session) -> None:
        done = crud.result_run_ids(session)
        for run in crud.list_runs(session, kind="eval", status="SUCCEEDED", limit=10_000)[0]:
            if run.id in done:
                continue
            try:
                index_results(session, self.store, run)
            except (ValueError, OSError) as e:
                session.rollback()
                log.error("cannot index the results of %s: %s", run.id, e)

    # -- thread ----------------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="catalog-sync", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - the loop must outlive one bad tick; the error is logged
                log.exception("catalog sync failed")
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def _finished_after_indexing(session: Session, set_id: str, producer) -> bool:
    """A generate run (re)wrote the set after it was indexed: a resumed run publishes a new manifest."""
    if producer is None or producer.status != "SUCCEEDED" or producer.finished_at is None:
        return False
    indexed = crud.get_sample_set(session, set_id)
    return indexed is not None and indexed.indexed_at < producer.finished_at
