"""The store on an S3-protocol server (moto on 127.0.0.1): indexing, images, run records, rebuild."""
from __future__ import annotations

import json
import shlex
import uuid


def test_a_store_on_s3_serves_sets_records_runs_and_rebuilds(s3_server, make_client, tmp_path, sample_set_writer,
                                                             launcher, auth):
    import s3fs

    endpoint, options = s3_server
    local = tmp_path / "local-store"
    sample_set_writer(local, "synthetic")
    prefix = f"dad-test/api-{uuid.uuid4().hex[:8]}"
    fs = s3fs.S3FileSystem(**{"endpoint_url": endpoint, "key": options["key"], "secret": options["secret"]})
    fs.put(str(local / "sample-sets"), f"{prefix}/sample-sets", recursive=True)

    client = make_client(f"s3://{prefix}", storage_options=options, allowed_sources=["s3://dad-test/images"])
    assert [s["id"] for s in client.get("/sample-sets").json()["data"]] == ["synthetic"]
    sample = client.get("/sample-sets/synthetic/samples", params={"limit": 1}).json()["data"][0]
    image = client.get(f"/samples/{sample['id']}/image")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")

    body = {"id": "gen-s3", "kind": "generate", "config": {"source": "s3://dad-test/images", "preset": "tiny"}}
    assert client.post("/runs", json=body, headers=auth).status_code == 201
    record = json.loads(fs.cat_file(f"{prefix}/runs/gen-s3/run.json"))
    assert record["id"] == "gen-s3" and record["output_uri"] == f"s3://{prefix}/sample-sets/gen-s3"
    argv = shlex.split(launcher.jobs["gen-s3"]["entrypoint"])
    assert f"--storage-option=endpoint_url={endpoint}" in argv
    assert options["secret"] not in launcher.jobs["gen-s3"]["entrypoint"]  # credentials go through the env

    from services.api.catalog.db import create_catalog_engine, migrate, session_factory
    from services.api.catalog.ingest import rebuild

    engine = create_catalog_engine(f"sqlite:///{tmp_path}/rebuilt.db")
    migrate(engine)
    with session_factory(engine)() as session:
        report = rebuild(session, client.app.state.store)
    assert (report.runs, report.sample_sets, report.samples, report.skipped) == (1, 1, 24, [])
