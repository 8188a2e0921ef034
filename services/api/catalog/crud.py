"""Catalog access: every query the routes and the sync need, and nothing else touches the tables."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Sequence

from sqlalchemy import case, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from schemas.api import TERMINAL_STATUSES
from services.api.catalog.models import Result, Run, Sample, SampleSet


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
def get_sample_set(session: Session, set_id: str) -> SampleSet | None:
    return session.get(SampleSet, set_id)


def list_sample_sets(session: Session, offset: int = 0, limit: int = 50) -> tuple[list[SampleSet], int]:
    count = session.scalar(select(func.count()).select_from(SampleSet))
    rows = session.scalars(select(SampleSet).order_by(SampleSet.created_at.desc(), SampleSet.id)
                           .offset(offset).limit(limit)).all()
    return list(rows), int(count or 0)


def sample_set_versions(session: Session) -> dict[str, str]:
    """{set id: manifest sha256} of every indexed set (what the sync compares the store against)."""
    return dict(session.execute(select(SampleSet.id, SampleSet.manifest_sha256)).tuples().all())


def replace_sample_set(session: Session, sample_set: SampleSet, row_chunks: Iterable[Sequence[dict]]) -> None:
    """Write a set and all its rows in one transaction: readers see the old index or the new, never half."""
    session.execute(delete(Sample).where(Sample.set_id == sample_set.id))
    session.execute(delete(SampleSet).where(SampleSet.id == sample_set.id))
    session.add(sample_set)
    session.flush()
    count = 0
    for rows in row_chunks:
        if rows:
            session.execute(Sample.__table__.insert(), list(rows))
            count += len(rows)
    sample_set.num_rows = count
    session.commit()


def per_class_statistics(session: Session, set_id: str) -> list[tuple[int, int, int]]:
    """(label, items, accepted adversarial) per class, from the adversarial rows."""
    query = (select(Sample.label, func.count(), func.sum(case((Sample.accepted, 1), else_=0)))
             .where(Sample.set_id == set_id, Sample.kind == "adversarial")
             .group_by(Sample.label).order_by(Sample.label))
    return [(int(label), int(n), int(acc or 0)) for label, n, acc in session.execute(query).all()]


def stored_kinds(session: Session, set_id: str) -> list[str]:
    return list(session.scalars(select(Sample.kind).where(Sample.set_id == set_id).distinct()).all())


# -- samples ----------------------------------------------------------------------------------------------------
SAMPLE_ORDERS = {"stored": (Sample.position,), "confidence": (Sample.confidence, Sample.position),
                 "-confidence": (Sample.confidence.desc(), Sample.position)}


def list_samples(session: Session, set_id: str, label: int | None = None, kind: str | None = None,
                 accepted: bool | None = None, min_confidence: float | None = None,
                 max_confidence: float | None = None, offset: int = 0, limit: int = 100,
                 source: str | None = None, order: str = "stored") -> tuple[list[Sample], int]:
    """A page of a set's rows; `source` is a substring of the source item's path, `order` a SAMPLE_ORDERS key."""
    query = select(Sample).where(Sample.set_id == set_id)
    if source:
        query = query.where(Sample.source_id.contains(source, autoescape=True))
    if label is not None:
        query = query.where(Sample.label == label)
    if kind is not None:
        query = query.where(Sample.kind == kind)
    if accepted is not None:
        query = query.where(Sample.accepted == accepted)
    if min_confidence is not None:
        query = query.where(Sample.confidence >= min_confidence)
    if max_confidence is not None:
        query = query.where(Sample.confidence <= max_confidence)
    count = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(*SAMPLE_ORDERS[order]).offset(offset).limit(limit)).all()
    return list(rows), int(count or 0)


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
    for table in (Sample, Result, SampleSet, Run):
        session.execute(delete(table))
    session.commit()
