"""The writer: rows round-trip exactly, shards commit atomically, the manifest is built from commits only."""
import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from schemas import sample_store as ss
from schemas.manifest import CodeVersion
from services.sample_store import SampleSetStore, build_rows, decode_png
from services.sample_store.publishing import IncompleteSetError, build_manifest
from services.sample_store.writer import parquet_bytes

def test_views_round_trip_bit_exactly_and_are_null_on_rows_without_them(synthetic):
    batch = synthetic.with_views(synthetic.sample_batch(), k=3)
    batch.adversarial_views = None
    rows = build_rows(synthetic.FP, [batch]).to_pylist()
    for i, row in enumerate(rows[0::2]):
        assert row["views"] == batch.clean_views.boxes[i].tolist() and row["view_classes"] is None
        np.testing.assert_array_equal(np.asarray(row["view_logits"], np.float16), batch.clean_views.logits[i])
        assert row["view_image"] is None
    assert all(r["views"] is None and r["view_logits"] is None for r in rows[1::2])
    top = synthetic.with_views(synthetic.sample_batch(), k=2, top_k=3)
    row = build_rows(synthetic.FP, [top]).to_pylist()[1]
    assert row["view_classes"] == top.adversarial_views.classes[0].tolist()
    np.testing.assert_array_equal(np.asarray(row["view_logits"], np.float16), top.adversarial_views.logits[0])


def test_rows_store_exactly_the_pixels_and_float16_logits(synthetic):
    batch = synthetic.sample_batch()
    table = build_rows(synthetic.FP, [batch])
    assert table.schema.equals(ss.SAMPLE_SCHEMA) and table.num_rows == 6
    rows = table.to_pylist()
    assert [r["kind"] for r in rows] == ["clean", "adversarial"] * 3  # each pair adjacent
    np.testing.assert_array_equal(decode_png(rows[1]["image"]["bytes"]), batch.adversarial[0])
    np.testing.assert_array_equal(decode_png(rows[2]["image"]["bytes"]), batch.clean[1])
    logits = table.column("teacher_logits").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    assert logits.dtype == np.float16
    np.testing.assert_array_equal(np.asarray(rows[1]["teacher_logits"], np.float16), batch.adversarial_verdicts.logits[0])
    assert rows[0]["sample_id"] == ss.sample_id(synthetic.FP, "c/0.jpg", "clean")
    assert rows[1]["image"]["path"] == rows[1]["sample_id"] + ".png"
    assert [r["accepted"] for r in rows[1::2]] == [True, False, True]
    assert [r["accepted"] for r in rows[0::2]] == [None] * 3  # v2: not copied onto clean rows


def test_accepted_counts_only_adversarial_verdicts_and_class_names_reach_the_schema(synthetic):
    batch = synthetic.sample_batch()
    batch.discretized, batch.discretized_verdicts = batch.clean.copy(), batch.adversarial_verdicts
    table = build_rows(synthetic.FP, [batch], class_names=list("abcde"))
    counts = {(r["kind"], r["accepted"]): r["count"]  # what a `GROUP BY kind, accepted` shows
              for r in table.group_by([ss.COL_KIND, ss.COL_ACCEPTED]).aggregate([([], "count_all")])
              .rename_columns(["kind", "accepted", "count"]).to_pylist()}
    assert counts == {("clean", None): 3, ("discretized", None): 3, ("adversarial", True): 2,
                      ("adversarial", False): 1}
    assert ss.class_names_of(table.schema) == list("abcde")
    assert table.schema.metadata[b"dad_format"] == f"dad-sample-set/{ss.FORMAT_VERSION}".encode()


def test_commit_writes_the_file_then_a_marker_naming_it_with_its_checksum(tmp_path, synthetic):
    store = SampleSetStore(str(tmp_path / "set"))
    c = synthetic.commit(store, 0, synthetic.sample_batch())
    data = (tmp_path / "set" / c.shard.path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == c.shard.sha256 and c.shard.num_bytes == len(data)
    assert pq.read_table(tmp_path / "set" / c.shard.path).num_rows == c.shard.num_rows == 6
    assert store.committed_shards() == {0: c}
    assert not list((tmp_path / "set").rglob("*.tmp-*"))


def test_each_attempt_writes_a_new_file_so_none_is_clobbered(tmp_path, synthetic):
    store = SampleSetStore(str(tmp_path / "set"))
    first = synthetic.commit(store, 0, synthetic.sample_batch())
    second = synthetic.commit(store, 0, synthetic.sample_batch())
    assert first.shard.path != second.shard.path
    assert (tmp_path / "set" / first.shard.path).exists()
    assert store.committed_shards()[0] == second


def test_unreadable_marker_counts_as_uncommitted(tmp_path, synthetic):
    store = SampleSetStore(str(tmp_path / "set"))
    synthetic.commit(store, 0, synthetic.sample_batch())
    synthetic.commit(store, 1, synthetic.sample_batch(offset=3))
    (tmp_path / "set" / "_commits" / "shard-000001.json").write_text('{"format": "dad-shard-co')
    assert set(store.committed_shards()) == {0}


def test_manifest_is_built_from_commits_only_and_orphans_are_removed(tmp_path, synthetic):
    store = SampleSetStore(str(tmp_path / "set"))
    synthetic.commit(store, 0, synthetic.sample_batch())
    orphan = tmp_path / "set" / "shards" / ss.shard_file_name(1, "deadbeef")
    orphan.write_bytes(b"half-written by a killed attempt")
    with pytest.raises(IncompleteSetError, match="1 of 2 shards"):
        build_manifest(synthetic.plan(2), store.committed_shards(), "run2", 1.0, CodeVersion())
    synthetic.commit(store, 1, synthetic.sample_batch(offset=3), run_id="run2")
    assert store.read_manifest() is None
    manifest = build_manifest(synthetic.plan(2), store.committed_shards(), "run2", 1.0, CodeVersion())
    uri = store.publish(manifest)
    assert uri.endswith("/set/manifest.json") and store.read_manifest() == manifest
    assert [s.index for s in manifest.shards] == [0, 1] and manifest.num_rows == 12
    assert manifest.statistics.seen == 6 and manifest.statistics.accepted == 4
    assert manifest.timings.runs == 2 and manifest.timings.stage_s["generate"] == 2.0
    assert store.remove_unreferenced(manifest).removed == [f"shards/{orphan.name}"] and not orphan.exists()
    assert json.loads((tmp_path / "set" / "manifest.json").read_text())["format"] == "dad-sample-set"


def test_cleanup_removes_only_the_writers_own_leftovers_and_reports_the_rest(tmp_path, synthetic):
    store = SampleSetStore(str(tmp_path / "set"))
    synthetic.commit(store, 0, synthetic.sample_batch())
    manifest = build_manifest(synthetic.plan(1), store.committed_shards(), "run", 1.0, CodeVersion())
    store.publish(manifest)
    root = tmp_path / "set"
    ours = [root / "shards" / ss.shard_file_name(3, "0123abcd"),                       # a killed attempt's shard
            root / "shards" / f"{ss.shard_file_name(0, 'ffee')}.tmp-{'a' * 32}",        # its temp file
            root / "_commits" / f"{ss.commit_marker_name(0)}.tmp-{'b' * 32}",           # a marker's temp file
            root / "_commits" / ss.commit_marker_name(7)]                               # a marker of no listed shard
    theirs = [root / "shards" / "README.txt", root / "shards" / "my-notes.parquet", root / "_commits" / "keep.me",
              root / "shards" / "sub" / "x.parquet"]
    for path in ours + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    cleanup = store.remove_unreferenced(manifest)
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)
    assert sorted(cleanup.removed) == sorted(f"{p.parent.name}/{p.name}" for p in ours)
    assert sorted(cleanup.foreign) == ["_commits/keep.me", "shards/README.txt", "shards/my-notes.parquet", "shards/sub"]
    assert (root / manifest.shards[0].path).exists() and (root / "_commits" / ss.commit_marker_name(0)).exists()


def test_hugging_face_datasets_shows_class_names_and_decodes_images(tmp_path, synthetic, monkeypatch):
    """Skipped unless `datasets` is installed (not a dependency); checked with datasets 5.2."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (tmp_path / "s.parquet").write_bytes(parquet_bytes(build_rows(synthetic.FP, [synthetic.sample_batch()],
                                                                  class_names=list("abcde"))))
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "s.parquet"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert ds.features["label"].names == list("abcde")
    assert ds[1]["image"].size == (8, 8) and ds[0]["accepted"] is None and ds[1]["accepted"] is True
