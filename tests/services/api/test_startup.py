"""services.api.startup: the database and the store are checked before the server starts."""
from __future__ import annotations

import uuid

from services.api.startup import check_database, check_store


def test_a_reachable_database_and_a_new_local_store_pass(tmp_path):
    assert check_database(f"sqlite:///{tmp_path}/catalog.db") is None
    assert check_store(str(tmp_path / "not-made-yet")) is None


def test_an_unreachable_database_names_DAD_DATABASE_URL_without_its_password():
    problem = check_database("postgresql+psycopg://dad:pg-secret@127.0.0.1:9/dad")
    assert problem is not None and "DAD_DATABASE_URL" in problem and "Connection refused" in problem
    assert "pg-secret" not in problem and "dad:***@127.0.0.1:9/dad" in problem


def test_a_missing_bucket_names_DAD_STORE_URI_and_the_bucket(s3_server):
    _, options = s3_server
    assert check_store("s3://dad-test/store", options) is None
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    problem = check_store(f"s3://{bucket}/store", options)
    assert problem is not None and "DAD_STORE_URI" in problem and f"bucket {bucket!r} does not exist" in problem
