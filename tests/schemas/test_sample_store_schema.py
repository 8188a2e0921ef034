"""The sample store format: ids, names and the row schema that other tools read without our code."""
import json

import pyarrow as pa
import pytest

from schemas import sample_store as ss

V1_CLEAN_ID = "f92e741e3550a4c4b051b005eac70b07"


def test_sample_id_is_deterministic_and_distinguishes_kind_item_and_config():
    a = ss.sample_id("cfg1", "dog/1.jpg", ss.KIND_CLEAN)
    assert a == ss.sample_id("cfg1", "dog/1.jpg", ss.KIND_CLEAN)
    others = {ss.sample_id("cfg1", "dog/1.jpg", ss.KIND_ADVERSARIAL), ss.sample_id("cfg2", "dog/1.jpg", ss.KIND_CLEAN),
              ss.sample_id("cfg1", "dog/2.jpg", ss.KIND_CLEAN)}
    assert a not in others and len(others) == 3
    assert len(a) == 32 and int(a, 16) >= 0


def test_sample_id_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        ss.sample_id("cfg", "x", "augmented")


def test_shard_file_names_round_trip_and_sort_by_index():
    name = ss.shard_file_name(7, "abc123")
    assert name == "shard-000007-abc123.parquet"
    assert ss.parse_shard_file_name(name) == (7, "abc123")
    assert ss.parse_shard_file_name("manifest.json") is None
    assert sorted([ss.shard_file_name(10, "a"), ss.shard_file_name(9, "b")])[0].startswith("shard-000009")
    with pytest.raises(ValueError):
        ss.shard_file_name(1, "not/hex")


def test_image_column_is_the_hugging_face_bytes_path_struct():
    image = ss.SAMPLE_SCHEMA.field(ss.COL_IMAGE).type
    assert image == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    features = json.loads(ss.SAMPLE_SCHEMA.metadata[b"huggingface"])["info"]["features"]
    assert features[ss.COL_IMAGE] == {"_type": "Image"}
    assert set(features) == set(ss.COLUMNS)


def test_teacher_logits_are_float16_lists_and_columns_are_complete():
    assert ss.SAMPLE_SCHEMA.field(ss.COL_TEACHER_LOGITS).type == pa.list_(pa.float16())
    assert ss.COLUMNS == (ss.COL_SAMPLE_ID, ss.COL_SOURCE_ID, ss.COL_SOURCE_PATH, ss.COL_LABEL, ss.COL_IMAGE,
                          ss.COL_KIND, ss.COL_TEACHER_LOGITS, ss.COL_TEACHER_PREDICTION,
                          ss.COL_TEACHER_CONFIDENCE, ss.COL_ACCEPTED, *ss.VIEW_COLUMNS, ss.COL_PERTURBATION)
    assert ss.SAMPLE_SCHEMA.metadata[b"dad_format"] == f"{ss.FORMAT_NAME}/{ss.FORMAT_VERSION}".encode()


def test_format_v2_declares_class_names_as_a_hugging_face_class_label():
    assert ss.FORMAT_VERSION == 4 and ss.READABLE_FORMAT_VERSIONS == (1, 2, 3, 4)
    schema = ss.sample_schema(["cat", "dog"])
    features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert features[ss.COL_LABEL] == {"names": ["cat", "dog"], "_type": "ClassLabel"}
    assert features[ss.COL_IMAGE] == {"_type": "Image"}
    assert ss.class_names_of(schema) == ["cat", "dog"]
    assert ss.class_names_of(ss.SAMPLE_SCHEMA) is None  # no names given: the label stays a plain int64
    assert schema.field(ss.COL_LABEL).type == pa.int64() and schema.equals(ss.SAMPLE_SCHEMA)


def test_format_v3_view_columns_are_nested_lists_and_an_optional_image():
    schema = ss.SAMPLE_SCHEMA
    assert schema.field(ss.COL_VIEWS).type == pa.list_(pa.list_(pa.int32()))
    assert schema.field(ss.COL_VIEW_LOGITS).type == pa.list_(pa.list_(pa.float16()))
    assert schema.field(ss.COL_VIEW_CLASSES).type == pa.list_(pa.list_(pa.int32()))
    assert schema.field(ss.COL_VIEW_IMAGE).type == ss.IMAGE_TYPE
    assert all(schema.field(c).nullable for c in ss.VIEW_COLUMNS)  # rows without views hold nulls


def test_accepted_is_defined_on_adversarial_rows_only_whatever_the_stored_version():
    assert ss.accepted_by_kind(ss.KIND_ADVERSARIAL, True) is True
    assert ss.accepted_by_kind(ss.KIND_ADVERSARIAL, False) is False
    assert ss.accepted_by_kind(ss.KIND_CLEAN, True) is None       # v1 stored true on every clean row
    assert ss.accepted_by_kind(ss.KIND_DISCRETIZED, False) is None
    assert ss.accepted_by_kind(ss.KIND_CLEAN, None) is None


def test_sample_ids_did_not_change_with_the_format_version():
    # the v1 key: ids of sets written before v2 stay valid (pinned value, computed by the v1 code)
    assert ss.sample_id("f" * 64, "c/0.jpg", ss.KIND_CLEAN) == V1_CLEAN_ID


def test_schemas_import_nothing_from_dad_core_or_services():
    import ast
    import pathlib

    import schemas

    for path in pathlib.Path(schemas.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in ("dad_core", "services"), path
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] not in ("dad_core", "services") for a in node.names), path
