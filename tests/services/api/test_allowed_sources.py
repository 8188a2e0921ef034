"""--allowed-sources: a request may only name inputs under the store, the operator's prefixes or the local
source root; anything else is a 422 naming the field, and no job starts."""
from __future__ import annotations

import pytest

from services.api.source_policy import is_allowed


@pytest.mark.parametrize("kind, config, field", [
    ("generate", {"source": "s3://other-bucket/images"}, ["source"]),
    ("generate", {"source": "/data/ok", "class_map": "/etc/classes.json"}, ["class_map"]),
    ("generate", {"source": "/data/../etc/images"}, ["source"]),
    ("train", {"source": "/data/ok", "sample_set": "synthetic", "val": "gs://elsewhere/val"}, ["val"]),
    ("train", {"source": "/data/ok", "sample_set": "synthetic", "student_init": "/root/w.safetensors"},
     ["student_init"]),
    ("eval", {"model": "s3://other-bucket/model", "suites": ["imagenet-r"], "data_root": "/data/eval"}, ["model"]),
    ("eval", {"model": "/data/m", "suites": ["imagenet-r"], "data_root": "s3://other/eval"}, ["data_root"]),
    ("eval", {"model": "/data/m", "suites": ["imagenet-a", "x=imagefolder:s3://other/pacs"]}, ["suites", "1"]),
    ("eval", {"model": "/data/m", "suites": ["imagenet-c=/home/someone/c"]}, ["suites", "0"]),
    # fields the evaluate settings expose since they are the job's own (schemas.jobs.EvalSettings)
    ("eval", {"model": "/data/m", "suites": ["imagenet-r"], "data_root": "/data/e", "class_names": "/etc/names.txt"},
     ["class_names"]),
    ("eval", {"model": "clip:ViT-B-32", "suites": ["imagenet-r"], "data_root": "/data/e", "pretrained": "/root/w.pt"},
     ["pretrained"]),
])
def test_inputs_outside_the_allowed_prefixes_are_refused(make_client, store, auth, launcher, kind, config, field):
    client = make_client(store, allowed_sources=["s3://datasets/imagenet", "/data"])
    r = client.post("/runs", json={"id": "r", "kind": kind, "config": config}, headers=auth)
    assert r.status_code == 422, r.text
    assert any(e["loc"] == ["body", kind, "config", *field] and "--allowed-sources" in e["msg"]
               for e in r.json()["detail"]), r.json()
    assert launcher.jobs == {}


def test_inputs_under_allowed_prefixes_and_the_store_are_accepted(make_client, store, auth, launcher):
    client = make_client(store, allowed_sources=["s3://datasets/imagenet", "/data"])
    bodies = [("generate", {"source": "s3://datasets/imagenet/train"}),
              ("generate", {"source": "/data/pacs/photo", "set_name": "other", "class_map": "/data/classes.json"}),
              ("eval", {"model": f"{store}/runs/x/model.pth", "suites": ["imagefolder:/data/pacs/sketch"]}),
              ("eval", {"model": "teacher:tiny", "suites": ["imagenet-r"], "data_root": "/data/eval"}),
              ("eval", {"model": "clip:ViT-B-32", "suites": ["imagenet-r"], "data_root": "/data/eval",
                        "pretrained": "openai", "class_names": "imagenet"})]
    for i, (kind, config) in enumerate(bodies):
        r = client.post("/runs", json={"id": f"ok-{i}", "kind": kind, "config": config}, headers=auth)
        assert r.status_code == 201, r.text


def test_default_is_the_store_and_local_paths_under_the_source_root(make_client, store, auth):
    client = make_client(store, source_root="/data")
    post = lambda i, source: client.post("/runs", json={"id": f"d{i}", "kind": "generate",  # noqa: E731
                                                        "config": {"source": source, "set_name": f"s{i}"}}, headers=auth)
    assert post(0, "/data/x").status_code == 201
    assert post(1, "/srv/x").status_code == 422
    assert post(2, "s3://any-bucket/x").status_code == 422  # no bucket but the store's without --allowed-sources
    assert post(3, "relative/x").status_code == 422


@pytest.mark.parametrize("uri, ok", [("s3://b/data/x", True), ("s3://b/data", True), ("s3://b/datax", False),
                                     ("s3://b/data/../other", False), ("S3://b/data/y", True), ("gs://b/data/x", False),
                                     ("/local/x", False)])
def test_prefix_matching(uri, ok):
    assert is_allowed(uri, ["s3://b/data"]) is ok
