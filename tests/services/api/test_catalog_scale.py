"""The catalog at scale, small: a 10 k-image set (20 k rows) written by the real writer (benchmarks/scale.py's
fabricator), indexed, then every samples page the browser can ask for must be an index range read (checked on
the SQL plan of the statements the code really runs), keyset pages must walk the set exactly, and a deep page
must cost what a first page costs. `make bench-scale` measures the same at 100 k+ images.
"""
from __future__ import annotations

import statistics
import time
from collections import Counter

import pytest
from sqlalchemy import event, func, select, text

from benchmarks.scale import fabricate
from services.api.catalog import crud
from services.api.catalog.db import create_catalog_engine, migrate, session_factory
from services.api.catalog.ingest import index_sample_set
from services.api.catalog.models import Sample
from services.api.store import Store

CLASSES = 100


def _catalog(tmp_path, n: int, name: str):
    store = tmp_path / f"store-{name}"
    fabricate(store, n, CLASSES, shard_items=1000)
    engine = create_catalog_engine(f"sqlite:///{tmp_path}/{name}.db")
    migrate(engine)
    sessions = session_factory(engine)
    with sessions() as session:
        index_sample_set(session, Store(str(store)), "scale")
    return engine, sessions


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    engine, sessions = _catalog(tmp_path_factory.mktemp("scale"), 10_000, "big")
    yield engine, sessions
    engine.dispose()


def _statements(engine, fn):
    """(sql, params) of every SELECT `fn` runs."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


PAGES = [dict(), dict(kind="adversarial"), dict(kind="clean"), dict(accepted=True), dict(kind="adversarial", accepted=False),
         dict(label=7), dict(label=7, kind="adversarial"), dict(min_confidence=0.9),
         dict(kind="adversarial", min_confidence=0.2, max_confidence=0.4)]
ORDERS = ["stored", "confidence", "-confidence"]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("filters", PAGES, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "all")
def test_every_samples_page_is_an_index_range_read_at_any_depth(big, order, filters):
    engine, sessions = big
    with sessions() as session:
        first = crud.list_samples(session, "scale", order=order, limit=60, **filters)
        assert first.rows and first.next is not None
        deep = crud.list_samples(session, "scale", order=order, limit=60, offset=first.count - 70, **filters)
        assert deep.rows
        after = crud.page_cursor(order, deep.rows[0])
        calls = _statements(engine, lambda: crud.list_samples(session, "scale", order=order, limit=60, after=after,
                                                              **filters))
        with engine.connect() as conn:
            for sql, params in calls:
                plan = " | ".join(r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all())
                assert "SCAN samples" not in plan, plan  # SEARCH: an index range, never a walk of the set
                if "label" in filters:  # the class index picks the rows; sorting a class (~2.5 k rows) is cheap
                    assert "samples USING INDEX ix_samples_class" in plan or "sample_counts" in plan, plan
                elif "ORDER BY" in sql:
                    assert "TEMP B-TREE" not in plan, plan   # the order comes from an index, not a sort of the set
    assert first.count_exact  # 10 k images: under the cap, exact even with a confidence range


def test_keyset_pages_walk_the_set_exactly_like_one_sorted_read(big):
    _, sessions = big
    with sessions() as session:
        for order, key in (("confidence", lambda r: (r.confidence, r.position)),
                           ("-confidence", lambda r: (-r.confidence, -r.position))):
            every = sorted(session.scalars(select(Sample).where(Sample.kind == "adversarial", Sample.label < 10)).all(),
                           key=key)
            walked, after = [], None
            while True:
                page = crud.list_samples(session, "scale", kind="adversarial", order=order, limit=37, after=after,
                                         label=None, max_confidence=None)
                walked += [r for r in page.rows if r.label < 10]
                if page.next is None:
                    break
                after = page.next
            assert [r.pk for r in walked] == [r.pk for r in every]
        # offsets and cursors agree, in stored order too
        by_offset = crud.list_samples(session, "scale", kind="clean", offset=120, limit=60)
        by_cursor = crud.list_samples(session, "scale", kind="clean", limit=60,
                                      after=crud.list_samples(session, "scale", kind="clean", offset=60, limit=60).next)
        assert [r.pk for r in by_offset.rows] == [r.pk for r in by_cursor.rows]


def test_bad_cursor_is_refused_naming_after(big):
    _, sessions = big
    with sessions() as session, pytest.raises(ValueError, match="after"):
        crud.list_samples(session, "scale", order="confidence", after="12")
    with sessions() as session:  # 1e999 parses to inf: clamped to the largest float, not an error or a NaN
        assert crud.list_samples(session, "scale", order="-confidence", after="1e999:0", limit=1).rows


def test_set_statistics_come_from_the_counts_made_at_ingest_not_the_rows(big):
    engine, sessions = big
    with sessions() as session:
        rows = session.execute(select(Sample.label, Sample.accepted).where(Sample.kind == "adversarial")).all()
        items, accepted = Counter(label for label, _ in rows), Counter(label for label, a in rows if a)
        calls = _statements(engine, lambda: (crud.per_class_statistics(session, "scale"),
                                             crud.stored_kinds(session, "scale")))
        assert crud.per_class_statistics(session, "scale") == [(c, items[c], accepted[c]) for c in sorted(items)]
        assert sorted(crud.stored_kinds(session, "scale")) == ["adversarial", "clean"]
        assert crud.list_samples(session, "scale", kind="adversarial", accepted=True, limit=1).count == sum(accepted.values())
    assert calls and not any(" samples" in sql for sql, _ in calls), calls


def test_a_deep_page_costs_what_a_first_page_costs(big):
    _, sessions = big

    def median_ms(fn, repeat=7):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times)

    with sessions() as session:
        last = crud.list_samples(session, "scale", order="-confidence", offset=19_000, limit=60).rows[0]
        after = crud.page_cursor("-confidence", last)
        first_ms = median_ms(lambda: crud.list_samples(session, "scale", order="-confidence", limit=60))
        deep_ms = median_ms(lambda: crud.list_samples(session, "scale", order="-confidence", limit=60, after=after))
        seek_ms = median_ms(lambda: crud.list_samples(session, "scale", offset=19_900, limit=60))
        session.execute(text("SELECT 1"))
    # an index range read: the same work at any depth (generous bounds for a loaded 2-core machine)
    assert deep_ms < 3 * first_ms + 5, (first_ms, deep_ms)
    assert seek_ms < 3 * first_ms + 5, (first_ms, seek_ms)


@pytest.mark.parametrize("width", [2, 5, 1000])
@pytest.mark.parametrize("ties", [False, True])
def test_ingest_top5_is_a_stable_full_sort_in_linear_time(width, ties):
    import numpy as np

    from services.api.catalog.ingest import top_k

    logits = np.random.default_rng(width).normal(size=(200, width)).astype(np.float16)
    if ties:
        logits = np.round(logits).astype(np.float16)  # many equal logits: ties across the 5th place
    probs = np.exp(logits.astype(np.float32) - logits.max(1, keepdims=True).astype(np.float32))
    probs /= probs.sum(1, keepdims=True)
    expected = np.argsort(-probs, axis=1, kind="stable")[:, :5]
    idx, p = top_k(logits)
    assert (idx == expected).all()
    assert np.allclose(p, np.take_along_axis(probs, expected, 1))


def _set_row(set_id: str):
    from services.api.catalog.models import SampleSet

    now = crud.utcnow()
    return SampleSet(id=set_id, uri=f"/x/{set_id}", manifest_sha256="0" * 64, created_at=now, preset="tiny", lineage={},
                     statistics={}, class_names=["a", "b"], shards=["s0"], num_rows=0, has_discretized=False,
                     indexed_at=now)


def _rows(set_id: str, start: int, n: int) -> list[dict]:
    return [{"set_id": set_id, "sample_id": f"{i:016x}", "source_id": f"a/{i // 2}.png", "position": i, "shard": 0,
             "row": i, "kind": "clean" if i % 2 == 0 else "adversarial", "label": i % 2, "prediction": 0,
             "confidence": 0.5, "accepted": None if i % 2 == 0 else bool(i % 3), "top5": [[0, 0.5]]}
            for i in range(start, start + n)]


def test_ingest_writes_in_short_transactions_and_the_set_is_browsable_from_its_first_chunk(tmp_path):
    import sqlite3

    engine = create_catalog_engine(f"sqlite:///{tmp_path}/c.db")
    migrate(engine)
    sessions = session_factory(engine)
    seen = []

    def accepted_in(n: int) -> int:
        return sum(1 for i in range(n) if i % 2 and i % 3)

    def chunks():
        for k in range(5):
            if k:  # between chunks: another writer gets the lock at once, readers see the rows in so far
                other = sqlite3.connect(tmp_path / "c.db", timeout=0.2)
                other.execute("UPDATE sample_sets SET preset = preset")  # any write: fails if the lock is held
                other.commit()
                other.close()
                with sessions() as reader:
                    s = crud.get_sample_set(reader, "s")
                    page = crud.list_samples(reader, "s", kind="adversarial", accepted=True, limit=1000)
                    seen.append((s.ready, s.indexed_rows, crud.list_sample_sets(reader)[1],
                                 crud.sample_set_versions(reader), page.count, len(page.rows)))
            yield _rows("s", 100 * k, 100)

    row = _set_row("s")
    row.num_rows = 500  # from the manifest: known before a row is in
    with sessions() as session:
        crud.replace_sample_set(session, row, chunks(), chunk_rows=100, counts_every_s=0)
    # shown from the first chunk on, not ready (so a restart indexes it again), totals those of the rows in
    assert seen == [(False, 100 * k, 1, {}, accepted_in(100 * k), accepted_in(100 * k)) for k in range(1, 5)]
    with sessions() as session:
        s = crud.get_sample_set(session, "s")
        assert s is not None and s.ready and s.num_rows == s.indexed_rows == 500
        assert crud.list_sample_sets(session)[1] == 1 and crud.sample_set_versions(session) == {"s": "0" * 64}
        assert crud.list_samples(session, "s", kind="adversarial", accepted=True).count == accepted_in(500)


def test_a_set_being_indexed_is_marked_so_in_the_api_and_the_ui(tmp_path):
    from services.api.sample_views import sample_set_public

    engine = create_catalog_engine(f"sqlite:///{tmp_path}/c.db")
    migrate(engine)
    sessions = session_factory(engine)
    views = []

    def chunks():
        yield _rows("s", 0, 100)
        with sessions() as reader:
            views.append(sample_set_public(crud.get_sample_set(reader, "s")))
        yield _rows("s", 100, 100)

    row = _set_row("s")
    row.num_rows = 200
    with sessions() as session:
        crud.replace_sample_set(session, row, chunks(), chunk_rows=100)
        done = sample_set_public(crud.get_sample_set(session, "s"))
    assert (views[0].indexing, views[0].indexed_rows, views[0].num_rows) == (True, 100, 200)
    assert (done.indexing, done.indexed_rows, done.num_rows) == (False, 200, 200)


def test_a_failed_ingest_leaves_no_rows_behind(tmp_path):
    engine = create_catalog_engine(f"sqlite:///{tmp_path}/c.db")
    migrate(engine)
    sessions = session_factory(engine)

    def chunks():
        yield _rows("s", 0, 100)
        yield _rows("s", 100, 100)
        raise OSError("shard unreadable")

    with sessions() as session, pytest.raises(OSError, match="unreadable"):
        crud.replace_sample_set(session, _set_row("s"), chunks(), chunk_rows=50)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Sample)) == 0
        assert crud.get_sample_set(session, "s") is None


@pytest.mark.parametrize("order", ORDERS)
def test_a_source_search_reads_a_bounded_window_per_request_and_its_pages_find_every_match(big, order, monkeypatch):
    """No index serves a substring, so a search reads at most SEARCH_WINDOW rows per request: `next` goes on from
    the last row read, and walking it finds exactly the matches of one filtered read, in order."""
    engine, sessions = big
    monkeypatch.setattr(crud, "SEARCH_WINDOW", 3000)
    needle = "img_000099"  # items 9,900-9,999: near the end in stored order
    with sessions() as session:
        everything = crud.list_samples(session, "scale", kind="adversarial", order=order, limit=20_000)
        expected = [r.sample_id for r in everything.rows if needle in r.source_id]
        found, after, requests, counts = [], None, 0, []
        while True:
            page = crud.list_samples(session, "scale", kind="adversarial", order=order, source=needle, limit=60,
                                     after=after)
            requests += 1
            found += [r.sample_id for r in page.rows]
            counts.append((page.count, page.count_exact))
            if page.next is None:
                break
            after = page.next
    assert found == expected and len(expected) == 100
    # 10,000 adversarial rows read 3,000 at a time (4 windows), plus a request where a full page of 60 matches
    # ends a window early
    assert 4 <= requests <= 4 + 2
    assert not any(exact for _, exact in counts)
