"""Readers trust only the manifest: what it lists, checked against its checksums."""
import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from schemas import sample_store as ss
from services.sample_store import load_manifest, open_sample_set, shard_uris, verify_sample_set
from services.storage import StorageError


def test_torch_dataset_selects_training_rows_by_default(synthetic_set):
    everything = open_sample_set(str(synthetic_set), accepted_only=False)
    training = open_sample_set(str(synthetic_set))
    adversarial = open_sample_set(str(synthetic_set / "manifest.json"), kinds=(ss.KIND_ADVERSARIAL,))
    assert len(everything) == 12 and len(training) == 6 + 4 and len(adversarial) == 4
    assert training.class_names == list("abcde")
    item = adversarial[0]
    assert item["kind"] == "adversarial" and item["accepted"] and item["image"].shape == (3, 8, 8)
    assert item["teacher_logits"].dtype.is_floating_point and item["teacher_logits"].shape == (5,)
    assert adversarial[-1]["source_id"] == "c/5.jpg"
    with pytest.raises(IndexError):
        adversarial[4]


def test_transform_receives_a_pil_image(synthetic_set):
    ds = open_sample_set(str(synthetic_set), transform=lambda img: np.asarray(img).shape)
    assert ds[0]["image"] == (8, 8, 3)


def test_files_the_manifest_does_not_list_are_never_read(synthetic_set):
    stray = synthetic_set / "shards" / ss.shard_file_name(9, "abcdef")
    pq.write_table(pq.read_table(next((synthetic_set / "shards").iterdir())), stray)
    assert len(open_sample_set(str(synthetic_set), accepted_only=False)) == 12
    assert all("abcdef" not in uri for uri in shard_uris(str(synthetic_set)))


def test_a_set_without_manifest_is_not_published(synthetic_set):
    (synthetic_set / "manifest.json").unlink()
    with pytest.raises(StorageError, match="not published"):
        open_sample_set(str(synthetic_set))


def test_a_corrupt_manifest_is_refused_with_its_uri(synthetic_set):
    (synthetic_set / "manifest.json").write_text('{"format": "dad-sample-set", "sha')
    with pytest.raises(ValueError, match="manifest.json is not valid JSON"):
        load_manifest(str(synthetic_set))


def test_verify_catches_a_tampered_shard(synthetic_set):
    verify_sample_set(str(synthetic_set))
    manifest = json.loads((synthetic_set / "manifest.json").read_text())
    shard = synthetic_set / manifest["shards"][1]["path"]
    shard.write_bytes(shard.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ValueError, match="checksum"):
        verify_sample_set(str(synthetic_set))


def test_shards_are_plain_parquet_with_the_hugging_face_image_struct(synthetic_set):
    table = pq.read_table(synthetic_set / "shards")  # pyarrow alone, no dad code
    assert table.num_rows == 12
    assert table.schema.field("image").type.names == ["bytes", "path"]
    assert table.schema.metadata[b"dad_format"] == b"dad-sample-set/4"


V1_SET = Path(__file__).parent / "data" / "v1-set"  # written by the format-v1 code (commit a7579af), kept as is


def test_a_set_written_in_format_v1_stays_readable():
    manifest = verify_sample_set(str(V1_SET))
    assert manifest.format_version == 1 and manifest.config.class_names == ["cat", "dog", "bird"]
    raw = pq.read_table(next((V1_SET / "shards").iterdir()))
    assert raw.schema.metadata[b"dad_format"] == b"dad-sample-set/1"
    assert all(raw.column("accepted").to_pylist()[0::3])  # v1 copied true onto clean rows
    training = open_sample_set(str(V1_SET))  # clean rows + accepted Q(x'), exactly as in v2
    kinds = training.index.column(ss.COL_KIND).to_pylist()
    assert kinds.count("clean") == 4 and kinds.count("adversarial") == 2 and "discretized" not in kinds
    everything = open_sample_set(str(V1_SET), kinds=ss.KINDS, accepted_only=False)
    assert len(everything) == 12
    by_kind = {}
    for i in range(len(everything)):
        item = everything[i]
        by_kind.setdefault(item["kind"], []).append(item["accepted"])
    assert by_kind["clean"] == [None] * 4 and by_kind["discretized"] == [None] * 4  # read as v2 defines them
    assert by_kind["adversarial"] == [True, False, True, False]


def test_v2_training_selection_keeps_clean_rows_whose_accepted_is_null(synthetic_set):
    raw = pq.read_table(synthetic_set / "shards")
    assert raw.filter(pc.equal(raw["kind"], "clean"))["accepted"].null_count == 6
    ds = open_sample_set(str(synthetic_set), kinds=ss.KINDS)
    assert ds.index.column(ss.COL_KIND).to_pylist().count("clean") == 6 and len(ds) == 10
    assert ds[0]["kind"] == "clean" and ds[0]["accepted"] is None


V2_SET = Path(__file__).parent / "data" / "v2-set"  # written by the format-v2 code (commit d0a4c55), kept as is


def test_a_set_written_in_format_v2_stays_readable_as_a_set_without_views():
    manifest = verify_sample_set(str(V2_SET))
    assert manifest.format_version == 2 and manifest.config.views is None
    raw = pq.read_table(next((V2_SET / "shards").iterdir()))
    assert raw.schema.metadata[b"dad_format"] == b"dad-sample-set/2" and "views" not in raw.schema.names
    training = open_sample_set(str(V2_SET))
    assert training.num_views == 0 and len(training) == 3 + 2
    item = training[0]
    assert item["kind"] == "clean" and item["image"].shape == (3, 8, 8) and item["teacher_logits"].shape == (5,)
    with pytest.raises(IndexError, match="has 0 views"):
        training.view(0, 0)


def test_a_view_is_rebuilt_from_the_stored_image_with_its_stored_logits(views_set):
    from dad_core.views import View, render_view
    from services.sample_store import decode_png

    ds = open_sample_set(str(views_set))
    assert ds.num_views == 2 and ds.manifest.config.views.kinds == ["clean", "adversarial"]
    rec = ds.record(1)
    for v in range(2):
        view = ds.view(1, v)
        box = rec["views"][v]
        # the set records bilinear (not today's default): the reader rebuilds with the recorded interpolation
        expected = render_view(decode_png(rec["image"]["bytes"]), View(*box[:4], bool(box[4])), 8, "bilinear")
        np.testing.assert_array_equal(view["image"].mul(255).round().byte().permute(1, 2, 0).numpy(), expected)
        assert view["image"].shape == (3, 8, 8) and view["label"] == rec["label"] and view["kind"] == rec["kind"]
        np.testing.assert_array_equal(view["teacher_logits"].numpy(),
                                      np.asarray(rec["view_logits"][v], np.float16).astype(np.float32))
    with pytest.raises(IndexError, match="has 2 views, asked for view 2"):
        ds.view(1, 2)
    shapes = open_sample_set(str(views_set), transform=lambda img: np.asarray(img).shape)
    assert shapes.view(0, 1)["image"] == (8, 8, 3)  # a transform gets the view as a PIL image


V3_SET = Path(__file__).parent / "data" / "v3-set"  # written by the format-v3 code (commit 3181355), kept as is


def test_a_set_written_in_format_v3_stays_readable_as_a_set_without_diagnostics():
    manifest = verify_sample_set(str(V3_SET))
    assert manifest.format_version == 3 and manifest.statistics.perturbation is None
    raw = pq.read_table(next((V3_SET / "shards").iterdir()))
    assert raw.schema.metadata[b"dad_format"] == b"dad-sample-set/3" and "perturbation" not in raw.schema.names
    training = open_sample_set(str(V3_SET))
    assert training.num_views == 2 and len(training) == 3 + 2
    assert "perturbation" not in training.record(1) and training[1]["kind"] == "adversarial"


def test_perturbation_diagnostics_are_stored_on_adversarial_rows_only(tmp_path, synthetic):
    from services.sample_store import SampleSetStore

    batch = synthetic.sample_batch()
    batch.perturbation = {name: np.full(len(batch), 0.25 * (i + 1), np.float32)
                          for i, name in enumerate(ss.DIAGNOSTIC_NAMES)}
    batch.perturbation["codes_vs_qx"][1] = np.nan  # a Q without codes
    store = SampleSetStore(str(tmp_path / "set"))
    synthetic.commit(store, 0, batch)
    raw = pq.read_table(tmp_path / "set" / "shards")
    diag = raw.column("perturbation").to_pylist()
    assert diag[0] is None and diag[1]["delta_l2"] == 0.25 and diag[5]["kl_vs_qx"] == 0.25 * 11
    assert [d is None for d in diag] == [k != "adversarial" for k in raw.column("kind").to_pylist()]
    assert np.isnan(diag[3]["codes_vs_qx"]) and diag[1]["codes_vs_qx"] == 0.25 * 6
