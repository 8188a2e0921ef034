"""Catalog access: every query the routes and the sync need, and nothing else touches the tables."""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence

from sqlalchemy import JSON, case, delete, func, or_, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from schemas.api import TERMINAL_STATUSES
from services.api.catalog.models import Result, Run, Sample, SampleCount, SampleSet


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# -- runs ------------------------------------------------------------------------------------------------------
def get_run(session: Session, run_id: str) -> Run | None:
    return session.get(Run, run_id)


def list_runs(session: Session, kind: str | None = None, status: str | None = None,
              offset: int = 0, limit: int = 50) -> tuple[list[Run], int]:
    query = select(Run)
    if kind:
        query = query.where(Run.kind == kind)
    if status:
        query = query.where(Run.status == status)
    count = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(Run.submitted_at.desc(), Run.id).offset(offset).limit(limit)).all()
    return list(rows), int(count or 0)


def active_runs(session: Session) -> list[Run]:
    return list(session.scalars(select(Run).where(Run.status.not_in(TERMINAL_STATUSES))).all())


def insert_run(session: Session, run: Run) -> Run:
    """Insert `run`; if a concurrent request inserted the same id first, return that row instead."""
    session.add(run)
    try:
        session.commit()
        return run
    except IntegrityError:
        session.rollback()
        existing = session.get(Run, run.id)
        if existing is None:
            raise
        return existing


def upsert_run(session: Session, run: Run) -> None:
    session.merge(run)
    session.commit()


def set_run_status(session: Session, run: Run, status: str, message: str = "", started_at: datetime | None = None,
                   finished_at: datetime | None = None) -> bool:
    """Record a status; True if anything changed."""
    changed = (run.status, run.message, run.started_at, run.finished_at) != (
        status, message or run.message, started_at or run.started_at, finished_at or run.finished_at)
    if changed:
        run.status, run.message = status, message or run.message
        run.started_at = started_at or run.started_at
        run.finished_at = finished_at or run.finished_at
        run.updated_at = utcnow()
        session.commit()
    return changed


# -- sample sets --------------------------------------------------------------------------------------------
# A set is shown once its first rows are in; until its last (`ready`), pages cover the rows indexed so far.
_VISIBLE = or_(SampleSet.ready, SampleSet.indexed_rows > 0)


def get_sample_set(session: Session, set_id: str) -> SampleSet | None:
    """The set if any of its rows are indexed (one being (re)indexed is shown with what is in so far)."""
    s = session.get(SampleSet, set_id)
    return s if s is not None and (s.ready or s.indexed_rows > 0) else None


def list_sample_sets(session: Session, offset: int = 0, limit: int = 50) -> tuple[list[SampleSet], int]:
    count = session.scalar(select(func.count()).select_from(SampleSet).where(_VISIBLE))
    rows = session.scalars(select(SampleSet).where(_VISIBLE)
                           .order_by(SampleSet.created_at.desc(), SampleSet.id).offset(offset).limit(limit)).all()
    return list(rows), int(count or 0)


def sample_set_versions(session: Session) -> dict[str, str]:
    """{set id: manifest sha256} of every completely indexed set (what the sync compares the store against)."""
    return dict(session.execute(select(SampleSet.id, SampleSet.manifest_sha256).where(SampleSet.ready)).tuples().all())


# Rows per transaction when a set is (re)indexed: the write lock is held for about a second at a time.
INGEST_CHUNK_ROWS = 20_000
# While a set is indexed its counts (set page, page totals) are rewritten at most this often: each rewrite is
# up to classes x kinds x verdicts rows, too many to repeat every chunk of a 1,000-class set.
COUNTS_EVERY_S = 10.0


def replace_sample_set(session: Session, sample_set: SampleSet, row_chunks: Iterable[Sequence[dict]],
                       chunk_rows: int = INGEST_CHUNK_ROWS, counts_every_s: float = COUNTS_EVERY_S) -> None:
    """Write a set, all its rows and their counts per (class, kind, accepted) in short transactions, so the
    API's own writes (runs, statuses) never wait behind a million-row ingest. The old index goes first; the
    set is shown from its first committed chunk on, marked as indexing (`ready` false, `indexed_rows` so far),
    its counts those of the rows in, and complete (`ready`) with its last row. A crash mid-way leaves it not
    ready, so the next sync indexes it again from the start. If writing fails, the partial rows are removed and
    the error raised."""
    _remove_sample_set(session, sample_set.id, chunk_rows)
    sample_set.ready = False
    sample_set.indexed_rows = 0
    session.add(sample_set)
    session.commit()
    try:
        count, pending, counts, counted_at = 0, 0, Counter(), time.monotonic()
        for rows in row_chunks:
            if rows:
                _insert_samples(session, rows)
                count += len(rows)
                pending += len(rows)
                counts.update((r["label"], r["kind"], r["accepted"]) for r in rows)
            if pending >= chunk_rows:
                first = sample_set.indexed_rows == 0
                if first or time.monotonic() - counted_at >= counts_every_s:
                    _write_counts(session, sample_set.id, counts)
                    counted_at = time.monotonic()
                sample_set.indexed_rows = count
                session.commit()
                pending = 0
        _write_counts(session, sample_set.id, counts)
        sample_set.num_rows = sample_set.indexed_rows = count
        sample_set.ready = True
        if session.connection().dialect.name == "postgresql":  # fresh statistics: its planner picks the indexes
            session.execute(text("ANALYZE samples, sample_counts"))
        session.commit()
    except BaseException:
        session.rollback()
        _remove_sample_set(session, sample_set.id, chunk_rows)
        raise


def _write_counts(session: Session, set_id: str, counts: Counter) -> None:
    """Replace the set's counts (in the caller's transaction) with `counts`: {(label, kind, accepted): n}."""
    session.execute(delete(SampleCount).where(SampleCount.set_id == set_id))
    if counts:
        session.execute(SampleCount.__table__.insert(), [
            {"set_id": set_id, "label": label, "kind": kind, "accepted": accepted, "n": n}
            for (label, kind, accepted), n in counts.items()])


_COPY_COLUMNS = [c.name for c in Sample.__table__.columns if c.name != "pk"]
# JSON columns go through COPY as JSON text (psycopg adapts no dict or list there); None stays NULL
_JSON_COLUMNS = frozenset(c.name for c in Sample.__table__.columns if isinstance(c.type, JSON))


def _insert_samples(session: Session, rows: Sequence[dict]) -> None:
    """Insert rows in the session's transaction; on PostgreSQL by COPY (an INSERT per row costs ~10x more)."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(Sample.__table__.insert(), list(rows))
        return
    with connection.connection.dbapi_connection.cursor() as cursor, \
            cursor.copy(f"COPY samples ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row([json.dumps(r[c]) if c in _JSON_COLUMNS and r[c] is not None else r[c]
                            for c in _COPY_COLUMNS])


def _remove_sample_set(session: Session, set_id: str, chunk_rows: int) -> None:
    """Hide the set, then delete its rows a chunk per transaction, then the set."""
    session.execute(update(SampleSet).where(SampleSet.id == set_id).values(ready=False, indexed_rows=0))
    session.execute(delete(SampleCount).where(SampleCount.set_id == set_id))
    session.commit()
    while session.execute(delete(Sample).where(Sample.pk.in_(
            select(Sample.pk).where(Sample.set_id == set_id).limit(chunk_rows)))).rowcount:
        session.commit()
    session.execute(delete(SampleSet).where(SampleSet.id == set_id))
    session.commit()


def per_class_statistics(session: Session, set_id: str) -> list[tuple[int, int, int]]:
    """(label, items, accepted adversarial) per class, from the counts made at ingest (not the rows)."""
    query = (select(SampleCount.label, func.sum(SampleCount.n),
                    func.sum(case((SampleCount.accepted, SampleCount.n), else_=0)))
             .where(SampleCount.set_id == set_id, SampleCount.kind == "adversarial")
             .group_by(SampleCount.label).order_by(SampleCount.label))
    return [(int(label), int(n), int(acc or 0)) for label, n, acc in session.execute(query).all()]


def stored_kinds(session: Session, set_id: str) -> list[str]:
    return list(session.scalars(select(SampleCount.kind).where(SampleCount.set_id == set_id).distinct()).all())


# -- samples ----------------------------------------------------------------------------------------------------
# Each order ends in position, so (order columns) is unique within a set and a page starts right after the
# previous page's last row (keyset): an index range read at any depth. "-confidence" runs the confidence
# index backwards, ties included (position down), so one row-value comparison selects the rest.
SAMPLE_ORDERS = {"stored": (Sample.position,), "confidence": (Sample.confidence, Sample.position),
                 "-confidence": (Sample.confidence.desc(), Sample.position.desc())}
_ORDER_KEYS = {"stored": (Sample.position,), "confidence": (Sample.confidence, Sample.position),
               "-confidence": (Sample.confidence, Sample.position)}
# Totals of filters the counts table cannot answer (a confidence range) stop counting here.
COUNT_CAP = 10_000
# A source search (a substring: no index serves it) reads at most this many rows per request, in the page's
# order from where the last page ended: the page holds the matches among them and `next` goes on after the last
# row read, so no request scans a million-row set (at 1.28 M images on SQLite: 15-90 ms per request, by order).
SEARCH_WINDOW = 30_000


@dataclass
class SamplePage:
    rows: list[Sample]
    count: int                 # rows matching the filters (at most COUNT_CAP when not exact)
    count_exact: bool
    next: str | None           # cursor of the page after this one (`after`); None on the last page


CURSOR_PATTERN = r"^-?[0-9]{1,20}(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?:-?[0-9]{1,18}$"


def page_cursor(order: str, row: Sample) -> str:
    """The `after` value that continues after `row`: "<confidence>:<position>" (stored order reads the position)."""
    return f"{row.confidence!r}:{row.position}"


def parse_cursor(order: str, after: str) -> tuple:
    """The keyset values of a cursor (CURSOR_PATTERN) for `order`; ValueError naming `after` if it is not one."""
    head, _, tail = after.partition(":")
    try:
        confidence, position = float(head), int(tail)
    except ValueError:
        raise ValueError(f"after: {after!r} is not a page cursor (pass the previous page's 'next')") from None
    if abs(confidence) == float("inf"):
        confidence = float.fromhex("0x1.fffffffffffffp+1023") * (1 if confidence > 0 else -1)
    return (position,) if order == "stored" else (confidence, position)


def list_samples(session: Session, set_id: str, label: int | None = None, kind: str | None = None,
                 accepted: bool | None = None, min_confidence: float | None = None,
                 max_confidence: float | None = None, offset: int = 0, limit: int = 100,
                 source: str | None = None, order: str = "stored", after: str | None = None) -> SamplePage:
    """A page of a set's rows; `source` is a substring of the source item's path, `order` a SAMPLE_ORDERS key.

    `after` (a previous page's `next`) continues by keyset, in time independent of depth; `offset` skips rows
    by walking an index (linear in the offset, except in stored order without filters, where it is a seek).
    """
    if accepted is not None and kind is None:
        kind = "adversarial"  # only adversarial rows carry a verdict (null elsewhere): same rows, narrower index
    where = [Sample.set_id == set_id]
    if label is not None:
        where.append(Sample.label == label)
    if kind is not None:
        where.append(Sample.kind == kind)
    if accepted is not None:
        where.append(Sample.accepted == accepted)
    scanning = []
    if min_confidence is not None:
        scanning.append(Sample.confidence >= min_confidence)
    if max_confidence is not None:
        scanning.append(Sample.confidence <= max_confidence)
    filters = where + scanning
    page = list(filters)
    sort, keys = SAMPLE_ORDERS[order], _ORDER_KEYS[order]
    if label is not None:  # "+ 0": no index serves the order, so the class's index picks its (few) rows to sort
        sort = tuple(c.desc() for c in (Sample.confidence + 0, Sample.position + 0)) if order == "-confidence" else \
            tuple(c + 0 for c in _ORDER_KEYS[order])
        keys = tuple(c + 0 for c in keys)
    if after is not None:
        keys, values = tuple_(*keys), tuple_(*parse_cursor(order, after))
        page.append(keys < values if order == "-confidence" else keys > values)
        offset = 0
    elif offset and order == "stored" and len(page) == 1:
        page.append(Sample.position >= offset)  # positions are 0..rows-1 in a set: the offset is a seek
        offset = 0
    if source:
        return _search(session, page, sort, order, source, offset, limit, continued=after is not None)
    count, exact = _count(session, set_id, label, kind, accepted, filters)
    query = select(Sample).where(*page).order_by(*sort)
    if offset:  # skip along the index (row ids only), then read just the page's rows
        pks = select(Sample.pk).where(*page).order_by(*sort).offset(offset).limit(limit)
        query = select(Sample).where(Sample.pk.in_(pks)).order_by(*sort)
    rows = list(session.scalars(query.limit(limit)).all())
    return SamplePage(rows, count, exact, page_cursor(order, rows[-1]) if len(rows) == limit else None)


def _search(session: Session, page: list, sort: tuple, order: str, source: str, offset: int, limit: int,
            continued: bool) -> SamplePage:
    """The rows whose source path contains `source` among the next SEARCH_WINDOW rows of `page` in `sort` order.
    `count` is the matches in that window: exact only when the window reached the end of a search from the start."""
    window = select(Sample.pk).where(*page).order_by(*sort).offset(offset).limit(SEARCH_WINDOW)
    match = [Sample.pk.in_(window), Sample.source_id.contains(source, autoescape=True)]
    rows = list(session.scalars(select(Sample).where(*match).order_by(*sort).limit(limit)).all())
    last_read = session.scalars(select(Sample).where(*page).order_by(*sort)
                                .offset(offset + SEARCH_WINDOW - 1).limit(1)).first()  # None: the window hit the end
    if len(rows) == limit:
        count = int(session.scalar(select(func.count()).select_from(select(Sample.pk).where(*match).subquery())))
        return SamplePage(rows, count, last_read is None and not offset and not continued, page_cursor(order, rows[-1]))
    return SamplePage(rows, len(rows), last_read is None and not offset and not continued,
                      None if last_read is None else page_cursor(order, last_read))


def _count(session: Session, set_id: str, label: int | None, kind: str | None, accepted: bool | None,
           where: list) -> tuple[int, bool]:
    """(rows matching, exact?): from the counts table when it can answer, else counted up to COUNT_CAP."""
    if len(where) == 1 + sum(x is not None for x in (label, kind, accepted)):
        query = select(func.coalesce(func.sum(SampleCount.n), 0)).where(SampleCount.set_id == set_id)
        for column, value in ((SampleCount.label, label), (SampleCount.kind, kind), (SampleCount.accepted, accepted)):
            if value is not None:
                query = query.where(column == value)
        return int(session.scalar(query)), True
    n = int(session.scalar(select(func.count()).select_from(
        select(Sample.pk).where(*where).limit(COUNT_CAP + 1).subquery())) or 0)
    return min(n, COUNT_CAP), n <= COUNT_CAP


def get_sample(session: Session, sample_id: str) -> Sample | None:
    return session.scalars(select(Sample).where(Sample.sample_id == sample_id).limit(1)).first()


def siblings(session: Session, set_id: str, source_ids: Sequence[str]) -> dict[tuple[str, str], Sample]:
    """{(source_id, kind): row} for the given source items of a set (pairs clean with adversarial)."""
    if not source_ids:
        return {}
    rows = session.scalars(select(Sample).where(Sample.set_id == set_id, Sample.source_id.in_(set(source_ids)))).all()
    return {(r.source_id, r.kind): r for r in rows}


# -- results -----------------------------------------------------------------------------------------------------
def replace_results(session: Session, run_id: str, results: Sequence[Result]) -> None:
    session.execute(delete(Result).where(Result.run_id == run_id))
    session.add_all(results)
    session.commit()


def list_results(session: Session, run_id: str | None = None, suite: str | None = None) -> list[Result]:
    query = select(Result)
    if run_id:
        query = query.where(Result.run_id == run_id)
    if suite:
        query = query.where(Result.suite == suite)
    return list(session.scalars(query.order_by(Result.created_at, Result.run_id, Result.suite, Result.metric)).all())


def result_run_ids(session: Session) -> set[str]:
    return set(session.scalars(select(Result.run_id).distinct()).all())


def clear(session: Session) -> None:
    """Empty every table (before a rebuild from the store)."""
    for table in (Sample, SampleCount, Result, SampleSet, Run):
        session.execute(delete(table))
    session.commit()
