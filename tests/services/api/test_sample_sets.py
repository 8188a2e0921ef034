"""GET /sample-sets (lineage, statistics), their samples (filters, pagination) and images."""
from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
from PIL import Image


def test_list_and_detail_show_lineage_and_statistics(client, store):
    sets = client.get("/sample-sets").json()
    assert sets["count"] == 1 and sets["data"][0]["id"] == "synthetic"
    d = client.get("/sample-sets/synthetic").json()
    assert d["num_items"] == 12 and d["num_rows"] == 24 and d["num_classes"] == 3
    assert d["lineage"]["teacher"]["name"] == "tiny-clip-vit" and d["lineage"]["discretizer"]["name"] == "tiny-vq"
    assert d["lineage"]["attack"] == {"steps": 1, "step_size": 0.1} and d["lineage"]["source"]["uri"] == "/src"
    assert d["variants"] == ["clean", "adversarial"]  # Q(x) is not stored by this generator
    per_class = {c["name"]: c for c in d["per_class"]}
    assert sum(c["items"] for c in per_class.values()) == 12
    assert sum(c["accepted"] for c in per_class.values()) == d["accepted"]
    for c in per_class.values():
        assert c["acceptance_rate"] == c["accepted"] / c["items"]


def test_samples_paginate_in_stored_order(client):
    first = client.get("/sample-sets/synthetic/samples", params={"limit": 5}).json()
    second = client.get("/sample-sets/synthetic/samples", params={"limit": 5, "offset": 5}).json()
    assert first["count"] == 24 and len(first["data"]) == 5 and (second["offset"], second["limit"]) == (5, 5)
    ids = [s["id"] for s in first["data"] + second["data"]]
    assert len(set(ids)) == 10
    everything = client.get("/sample-sets/synthetic/samples", params={"limit": 500}).json()["data"]
    assert [s["id"] for s in everything[:10]] == ids
    assert client.get("/sample-sets/synthetic/samples").json()["limit"] == 100  # the browser's page size
    assert client.get("/sample-sets/synthetic/samples", params={"limit": 501}).status_code == 422


def test_sample_filters(client):
    get = lambda **p: client.get("/sample-sets/synthetic/samples", params={"limit": 500, **p}).json()
    adv = get(kind="adversarial")
    assert adv["count"] == 12 and {s["kind"] for s in adv["data"]} == {"adversarial"}
    dogs = get(**{"class": 1, "kind": "adversarial"})
    assert dogs["count"] == 4 and {s["class_name"] for s in dogs["data"]} == {"dog"}
    rejected = get(kind="adversarial", accepted="false")
    assert rejected["count"] == 12 - get(kind="adversarial", accepted="true")["count"] > 0
    assert all(not s["accepted"] for s in rejected["data"])
    confident = get(min_confidence=0.5, max_confidence=0.9)
    assert all(0.5 <= s["confidence"] <= 0.9 for s in confident["data"])
    assert confident["count"] < 24
    assert client.get("/sample-sets/synthetic/samples", params={"min_confidence": 2}).status_code == 422
    assert client.get("/sample-sets/synthetic/samples", params={"kind": "sketch"}).status_code == 422


def test_each_sample_carries_its_pair_top5_and_image_urls(client):
    s = client.get("/sample-sets/synthetic/samples", params={"kind": "adversarial", "limit": 1}).json()["data"][0]
    assert s["pair"]["kind"] == "clean" and s["pair"]["id"] != s["id"]
    assert len(s["top5"]) == 3 and abs(sum(t["probability"] for t in s["top5"]) - 1) < 1e-3
    assert s["top5"][0]["label"] == s["prediction"] and s["top5"][0]["probability"] >= s["top5"][1]["probability"]
    assert s["images"]["discretized"] is None
    assert s["images"]["clean"] == f"/samples/{s['pair']['id']}/image?variant=clean"


def test_images_are_the_stored_png_bytes(client, store):
    s = client.get("/sample-sets/synthetic/samples", params={"kind": "adversarial", "limit": 1}).json()["data"][0]
    shard = sorted((store / "sample-sets" / "synthetic" / "shards").glob("*.parquet"))[0]
    rows = pq.read_table(shard).to_pylist()
    stored = {r["sample_id"]: r["image"]["bytes"] for r in rows}
    for url, sid in ((s["images"]["adversarial"], s["id"]), (s["images"]["clean"], s["pair"]["id"]),
                     (f"/samples/{s['id']}/image?variant=clean", s["pair"]["id"]), (f"/samples/{s['id']}/image", s["id"])):
        r = client.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.content == stored[sid]
        assert np.asarray(Image.open(io.BytesIO(r.content))).shape == (16, 16, 3)
    q = client.get(f"/samples/{s['id']}/image", params={"variant": "discretized"})
    assert q.status_code == 404 and "Q(x)" in q.json()["detail"]


def test_accepted_is_null_on_clean_rows_and_filters_adversarial_verdicts(client):
    get = lambda **p: client.get("/sample-sets/synthetic/samples", params={"limit": 500, **p}).json()
    clean = get(kind="clean")["data"]
    assert clean and all(s["accepted"] is None for s in clean)  # format v2: not copied onto clean rows
    assert {s["kind"] for s in get(accepted="true")["data"]} == {"adversarial"}
    assert get(accepted="true")["count"] + get(accepted="false")["count"] == 12


def test_samples_sort_by_teacher_confidence(client):
    get = lambda **p: client.get("/sample-sets/synthetic/samples", params={"limit": 500, "kind": "adversarial", **p})
    up = [s["confidence"] for s in get(order="confidence").json()["data"]]
    down = [s["confidence"] for s in get(order="-confidence").json()["data"]]
    stored = [s["confidence"] for s in get().json()["data"]]
    assert up == sorted(stored) and down == sorted(stored, reverse=True) and stored != up
    assert get(order="confidence; drop table samples").status_code == 422
    assert get(order="label").status_code == 422


def test_samples_search_by_source_path(client):
    get = lambda **p: client.get("/sample-sets/synthetic/samples", params={"limit": 500, **p})
    dogs = get(source="dog/").json()
    assert dogs["count"] == 8 and all(s["source_id"].startswith("dog/") for s in dogs["data"])  # clean + Q(x')
    assert get(source="bird/009").json()["count"] == 2
    assert get(source="%").json()["count"] == 0  # LIKE wildcards are matched literally
    assert get(source="_").json()["count"] == 0
    assert get(source="").status_code == 422 and get(source="x" * 201).status_code == 422


def test_a_set_written_in_format_v1_is_indexed_with_accepted_per_kind(make_client, tmp_path):
    import shutil
    from pathlib import Path

    store = tmp_path / "v1-store"
    v1 = Path(__file__).parents[1] / "sample_store" / "data" / "v1-set"
    shutil.copytree(v1, store / "sample-sets" / "v1-set")
    client = make_client(store)
    d = client.get("/sample-sets/v1-set").json()
    assert d["class_names"] == ["cat", "dog", "bird"] and d["variants"] == ["clean", "discretized", "adversarial"]
    assert d["accepted"] == 2 and sum(c["accepted"] for c in d["per_class"]) == 2
    rows = client.get("/sample-sets/v1-set/samples", params={"limit": 500}).json()["data"]
    assert len(rows) == 12
    assert all(r["accepted"] is None for r in rows if r["kind"] != "adversarial")  # v1 stored true / Q(x) verdicts
    assert [r["accepted"] for r in rows if r["kind"] == "adversarial"] == [True, False, True, False]


def test_pages_continue_by_cursor_and_a_bad_cursor_is_a_422_naming_after(client):
    get = lambda **q: client.get("/sample-sets/synthetic/samples", params=q)  # noqa: E731
    first = get(kind="adversarial", order="-confidence", limit=5).json()
    second = get(kind="adversarial", order="-confidence", limit=5, after=first["next"]).json()
    by_offset = get(kind="adversarial", order="-confidence", limit=5, offset=5).json()
    assert [s["id"] for s in second["data"]] == [s["id"] for s in by_offset["data"]] and second["count"] == 12
    last = get(kind="adversarial", order="-confidence", limit=5, after=second["next"]).json()
    assert len(last["data"]) == 2 and last["next"] is None and first["count_exact"]
    bad = get(order="confidence", after="17")  # not "<confidence>:<position>"
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "after"]
    assert get(after="0.5:" + "9" * 18).json()["data"] == []  # any well-formed cursor is a place in the set


def test_detail_gives_the_diagnostics_aggregates_from_the_manifest_and_each_sample_its_own(client, store):
    from schemas.manifest import SampleSetManifest

    manifest = SampleSetManifest.from_json((store / "sample-sets" / "synthetic" / "manifest.json").read_text())
    d = client.get("/sample-sets/synthetic").json()
    assert d["diagnostics"] == manifest.statistics.perturbation.summary().model_dump(mode="json")
    assert d["diagnostics"]["metrics"]["codes_vs_qqx"]["n"] == 11 and set(d["diagnostics"]["per_class"]) == {"0", "1", "2"}
    assert "perturbation" not in d["statistics"]  # the raw tally (histograms) stays in the manifest
    rows = client.get("/sample-sets/synthetic/samples", params={"limit": 500}).json()["data"]
    raw = {r["source_id"]: r["perturbation"] for r in pq.read_table(store / "sample-sets" / "synthetic" / "shards")
           .to_pylist() if r["kind"] == "adversarial"}
    for r in rows:  # clean and Q(x') rows alike carry their item's Q(x') diagnostics
        assert r["perturbation"]["l2_vs_qx"] == raw[r["source_id"]]["l2_vs_qx"]
    first = next(r for r in rows if r["source_id"] == "cat/000.png")
    assert first["perturbation"]["codes_vs_qqx"] is None  # NaN (not measured) is null in JSON


def test_a_set_written_in_format_v3_is_indexed_without_diagnostics(make_client, tmp_path):
    import shutil
    from pathlib import Path

    store = tmp_path / "v3-store"
    shutil.copytree(Path(__file__).parents[1] / "sample_store" / "data" / "v3-set", store / "sample-sets" / "v3-set")
    client = make_client(store)
    d = client.get("/sample-sets/v3-set").json()
    assert d["diagnostics"] is None and d["num_items"] == 3
    rows = client.get("/sample-sets/v3-set/samples").json()["data"]
    assert len(rows) == 6 and all(r["perturbation"] is None for r in rows)
