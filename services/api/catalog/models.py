"""Catalog tables: an index of the store (runs, sample sets, their rows, evaluation results).

The store is the source of truth; every row here can be rebuilt from it (`python -m services.api.catalog
rebuild`). Schema changes go through an Alembic migration in `migrations/versions/`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, true, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)       # client-chosen; Ray's submission_id
    kind: Mapped[str] = mapped_column(String(16), index=True)            # generate | train | eval
    status: Mapped[str] = mapped_column(String(16), index=True)          # Ray's JobStatus, or UNKNOWN
    config: Mapped[dict[str, Any]] = mapped_column()
    config_sha256: Mapped[str] = mapped_column(String(64))
    entrypoint: Mapped[str] = mapped_column(Text)
    output_uri: Mapped[str] = mapped_column(Text)                        # what the job writes (in the store)
    sample_set_id: Mapped[str | None] = mapped_column(String(128))       # generate runs: the set they make
    message: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime] = mapped_column(index=True)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class SampleSet(Base):
    __tablename__ = "sample_sets"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)       # the set's folder name in the store
    uri: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(index=True)
    preset: Mapped[str] = mapped_column(String(64))
    lineage: Mapped[dict[str, Any]] = mapped_column()                    # source, teacher, discretizer, attack
    statistics: Mapped[dict[str, Any]] = mapped_column()
    class_names: Mapped[list[Any]] = mapped_column()
    shards: Mapped[list[Any]] = mapped_column()                          # relative shard paths, in order
    num_rows: Mapped[int] = mapped_column(Integer)
    has_discretized: Mapped[bool] = mapped_column(Boolean, default=False)  # Q(x) rows stored
    indexed_at: Mapped[datetime] = mapped_column()
    # False while its rows are written in short transactions (crud.replace_sample_set); shown once its first
    # rows are in (indexed_rows > 0), marked as indexing, so a million-row set is browsable in seconds.
    ready: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    indexed_rows: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Sample(Base):
    """One stored row (clean or adversarial image) of a sample set, with where to find its bytes."""

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("set_id", "sample_id"),
        # Every page the browser asks for is an index range read (keyset on the order's columns, ending in
        # position), never a sort of the set: one index per (filter prefix, order) it offers.
        Index("ix_samples_position", "set_id", "position"),
        Index("ix_samples_order", "set_id", "kind", "position"),
        Index("ix_samples_accepted", "set_id", "kind", "accepted", "position"),
        Index("ix_samples_class", "set_id", "label", "kind", "position"),
        Index("ix_samples_pair", "set_id", "source_id"),
        Index("ix_samples_confidence", "set_id", "kind", "confidence", "position"),
        Index("ix_samples_confidence_all", "set_id", "confidence", "position"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    set_id: Mapped[str] = mapped_column(ForeignKey("sample_sets.id", ondelete="CASCADE"))
    sample_id: Mapped[str] = mapped_column(String(64), index=True)
    source_id: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)                       # order in the set (shard, row)
    shard: Mapped[int] = mapped_column(Integer)                          # index into SampleSet.shards
    row: Mapped[int] = mapped_column(Integer)                            # row within the shard file
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[int] = mapped_column(Integer)
    prediction: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    accepted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # adversarial rows only (format v2)
    top5: Mapped[list[Any]] = mapped_column()                            # [[class index, probability], ...]
    perturbation: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)  # Q(x') rows (format v4): what
                                                                         # the attack changed; NaN stored as null


class SampleCount(Base):
    """Rows of a set per (class, kind, accepted), counted once at ingest: the set page's per-class table, its
    stored kinds and the samples pages' totals read these few rows instead of counting millions."""

    __tablename__ = "sample_counts"
    __table_args__ = (Index("ix_sample_counts_set", "set_id", "label"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    set_id: Mapped[str] = mapped_column(ForeignKey("sample_sets.id", ondelete="CASCADE"))
    label: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    accepted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    n: Mapped[int] = mapped_column(Integer)


class Result(Base):
    """One number of an evaluation: (run, suite, metric) -> value."""

    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("run_id", "suite", "metric"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(128), index=True)
    model: Mapped[str] = mapped_column(Text)                             # what was evaluated
    suite: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(64))                      # top1, mCE, ...
    value: Mapped[float] = mapped_column(Float)
    lower_is_better: Mapped[bool] = mapped_column(Boolean, default=False)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()
