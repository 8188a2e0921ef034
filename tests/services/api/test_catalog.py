"""The catalog: Alembic migrations match the tables; the store alone rebuilds it; the sync follows runs."""
from __future__ import annotations

import json

from sqlalchemy import inspect

from services.api.catalog.db import create_catalog_engine, migrate


def test_migrations_create_exactly_the_model_schema(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from services.api.catalog.models import Base

    engine = create_catalog_engine(f"sqlite:///{tmp_path}/c.db")
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], diff
        assert set(inspect(conn).get_table_names()) >= {"runs", "sample_sets", "samples", "results", "alembic_version"}


def _eval_result(run_folder, suites):
    """A result file in the evaluator's format (services.evaluator.results)."""
    from services.evaluator.results import RESULT_FORMAT, RESULT_VERSION

    folder = run_folder / "results"
    folder.mkdir(parents=True, exist_ok=True)
    metrics = [{"suite": s, "metric": m, "value": v, "lower_is_better": m == "mCE", "ci95": None, "num_images": 10}
               for s, (m, v) in suites.items()]
    doc = {"format": RESULT_FORMAT, "version": RESULT_VERSION, "id": "e1", "name": "train-1",
           "created_at": "2026-11-25T10:00:00+00:00", "suites": {s: {"column": s} for s in suites}, "metrics": metrics}
    (folder / "e1.json").write_text(json.dumps(doc))


def test_rebuild_from_the_store_recreates_runs_sets_and_results(client, auth, launcher, store, tmp_path):
    gen = {"id": "gen-1", "kind": "generate", "config": {"source": "/d", "set_name": "synthetic"}}
    ev = {"id": "eval-1", "kind": "eval", "config": {"model": "/m/model.pth", "suites": ["imagenet-r", "imagenet-c"]}}
    assert client.post("/runs", json=gen, headers=auth).status_code == 201
    assert client.post("/runs", json=ev, headers=auth).status_code == 201
    launcher.jobs["gen-1"]["status"] = "SUCCEEDED"
    launcher.jobs["eval-1"]["status"] = "SUCCEEDED"
    _eval_result(store / "runs" / "eval-1", {"imagenet-r": ("top1", 41.5), "imagenet-c": ("mCE", 70.2)})
    client.app.state.sync.run_once()
    results = client.get("/results").json()
    assert results["suites"] == ["imagenet-c", "imagenet-r"]
    assert {(r["suite"], r["value"], r["lower_is_better"]) for r in results["data"]} == {
        ("imagenet-r", 41.5, False), ("imagenet-c", 70.2, True)}
    before = {p: client.get(p).json() for p in ("/runs", "/sample-sets", "/results", "/sample-sets/synthetic",
                                                "/sample-sets/synthetic/samples?limit=500")}

    from services.api.catalog.__main__ import main

    url = f"sqlite:///{tmp_path}/rebuilt.db"
    assert main(["rebuild", "--store", str(store), "--database", url]) == 0
    from fastapi.testclient import TestClient

    from services.api.app import create_app
    from services.api.settings import Settings

    settings = Settings(store_uri=str(store), database_url=url, auth_token="x" * 16, ray_address="http://x:1",
                        sync_interval_s=0)
    with TestClient(create_app(settings, launcher=launcher)) as rebuilt:
        for path, expected in before.items():
            got = rebuilt.get(path).json()
            if path == "/sample-sets/synthetic":
                got["lineage"]["run_id"] = expected["lineage"]["run_id"]
            assert got == expected, path
        assert rebuilt.get("/sample-sets/synthetic").json()["lineage"]["run_id"] == "gen-1"
        assert rebuilt.get("/runs/gen-1").json()["status"] == "SUCCEEDED"


def test_the_sync_indexes_a_set_when_its_run_succeeds_and_marks_runs_ray_forgot(client, auth, launcher, store,
                                                                               sample_set_writer):
    run = {"id": "gen-2", "kind": "generate", "config": {"source": "/d"}}
    assert client.post("/runs", json=run, headers=auth).status_code == 201
    launcher.jobs["gen-2"]["status"] = "RUNNING"
    client.app.state.sync.run_once()
    assert client.get("/runs/gen-2").json()["status"] == "RUNNING"
    assert client.get("/sample-sets/gen-2").status_code == 404  # no manifest yet
    sample_set_writer(store, "gen-2", per_class=2)
    launcher.jobs["gen-2"]["status"] = "SUCCEEDED"
    client.app.state.sync.run_once()
    assert client.get("/runs", params={"status": "SUCCEEDED"}).json()["count"] == 1
    detail = client.get("/sample-sets/gen-2").json()
    assert detail["num_items"] == 6 and detail["lineage"]["run_id"] == "gen-2"
    # a catalog rebuilt while Ray lost the job: UNKNOWN, asked once, not polled forever
    del launcher.jobs["gen-2"]
    from services.api.catalog.models import Run

    with client.app.state.sessions() as session:
        session.get(Run, "gen-2").status = "RUNNING"
        session.commit()
    client.app.state.sync.run_once()
    assert client.get("/runs/gen-2").json()["status"] == "UNKNOWN"


def test_the_migrations_render_for_postgresql(tmp_path):
    """PostgreSQL by URL: the same migrations, rendered as PostgreSQL DDL (offline: no server needed)."""
    import io

    from alembic import command

    from services.api.catalog.db import alembic_config

    cfg = alembic_config()
    cfg.set_main_option("sqlalchemy.url", "postgresql://dad@localhost/catalog")
    cfg.output_buffer = io.StringIO()
    command.upgrade(cfg, "head", sql=True)
    ddl = cfg.output_buffer.getvalue()
    for table in ("runs", "sample_sets", "samples", "results"):
        assert f"CREATE TABLE {table} (" in ddl
    assert "TIMESTAMP WITH TIME ZONE" in ddl and "REFERENCES sample_sets (id) ON DELETE CASCADE" in ddl


def test_a_postgresql_catalog_rebuilds_from_the_store(store):
    """Runs only with DAD_TEST_POSTGRES_URL (e.g. postgresql+psycopg://dad@127.0.0.1/dad_test) and a driver."""
    import os

    import pytest

    url = os.environ.get("DAD_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set DAD_TEST_POSTGRES_URL to test against a PostgreSQL server")
    from services.api.catalog.db import session_factory
    from services.api.catalog.ingest import rebuild
    from services.api.store import Store

    engine = create_catalog_engine(url)
    migrate(engine)
    with session_factory(engine)() as session:
        report = rebuild(session, Store(str(store)))
    assert report.sample_sets == 1 and report.samples == 24


def test_migration_0002_makes_accepted_per_kind_in_an_existing_catalog(tmp_path):
    """A catalog indexed before format v2 (accepted true on clean rows) is fixed up by the upgrade."""
    from sqlalchemy import text

    engine = create_catalog_engine(f"sqlite:///{tmp_path}/old.db")
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sample_sets VALUES ('s', 'u', 'h', '2026-01-01', 'tiny', '{}', '{}', '[]', "
                          "'[]', 3, 0, '2026-01-01')"))
        for i, (kind, accepted) in enumerate((("clean", 1), ("discretized", 0), ("adversarial", 0))):
            conn.execute(text("INSERT INTO samples (set_id, sample_id, source_id, position, shard, row, kind, label, "
                              "prediction, confidence, accepted, top5) VALUES ('s', :id, 'a', :i, 0, :i, :kind, 0, 0, "
                              "0.5, :acc, '[]')"), {"id": f"id{i}", "i": i, "kind": kind, "acc": accepted})
    migrate(engine)
    with engine.begin() as conn:
        got = dict(conn.execute(text("SELECT kind, accepted FROM samples")).all())
    assert got == {"clean": None, "discretized": None, "adversarial": 0}


def test_migration_0003_keeps_the_rows_and_counts_indexed_sets(tmp_path):
    """An existing catalog keeps every row, its sets stay visible, and their counts are made once."""
    from sqlalchemy import text

    from services.api.catalog import crud
    from services.api.catalog.db import session_factory

    engine = create_catalog_engine(f"sqlite:///{tmp_path}/old.db")
    migrate(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sample_sets VALUES ('s', 'u', 'h', '2026-01-01', 'tiny', '{}', '{}', '[]', "
                          "'[]', 3, 0, '2026-01-01')"))
        for i, (kind, accepted) in enumerate((("clean", None), ("adversarial", 1), ("adversarial", 0))):
            conn.execute(text("INSERT INTO samples (set_id, sample_id, source_id, position, shard, row, kind, label, "
                              "prediction, confidence, accepted, top5) VALUES ('s', :id, 'a', :i, 0, :i, :kind, 0, 0, "
                              "0.5, :acc, '[]')"), {"id": f"id{i}", "i": i, "kind": kind, "acc": accepted})
    migrate(engine)
    with session_factory(engine)() as session:
        assert crud.get_sample_set(session, "s") is not None
        assert crud.per_class_statistics(session, "s") == [(0, 2, 1)]
        assert crud.list_samples(session, "s").count == 3
