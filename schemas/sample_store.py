"""The sample store's on-disk format, defined once: layout, row schema, sample ids, shard names.

A sample set is a folder (on any fsspec URL) holding Parquet shards and, written last, `manifest.json`:

    <set>/manifest.json                     the published set: readers trust only this file
    <set>/shards/shard-000000-<token>.parquet   rows (schema below); <token> is unique per write attempt
    <set>/_commits/shard-000000.json        a shard's commit marker (resume state; not for readers)
    <set>/_plan.json                        the resolved job config, written before the first shard
    <set>/_status.json                      live progress for the control plane

Each source image gives a `clean` row (the resized image), optionally a `discretized` row (Q(x), to inspect
what the discretizer alone does) and an `adversarial` row (Q(x') of DAD, Eq. 9), all stored as PNG (lossless, so the decoded image is bit-exact what the teacher judged). The image column
is the `{bytes, path}` struct of Hugging Face `datasets`, so pyarrow, DuckDB and `datasets` read shards
without this package.
"""
from __future__ import annotations

import hashlib
import json
import re

import pyarrow as pa

FORMAT_NAME = "dad-sample-set"
FORMAT_VERSION = 1

MANIFEST_NAME = "manifest.json"
PLAN_NAME = "_plan.json"
STATUS_NAME = "_status.json"
SHARDS_DIR = "shards"
COMMITS_DIR = "_commits"

KIND_CLEAN = "clean"
KIND_DISCRETIZED = "discretized"   # Q(x), the un-attacked discretization: for inspection, not training
KIND_ADVERSARIAL = "adversarial"
KINDS = (KIND_CLEAN, KIND_DISCRETIZED, KIND_ADVERSARIAL)
TRAINING_KINDS = (KIND_CLEAN, KIND_ADVERSARIAL)  # what readers return by default

IMAGE_FORMAT = "png"

# Column names (use these constants, not string literals, in readers and writers).
COL_SAMPLE_ID = "sample_id"
COL_SOURCE_ID = "source_id"             # stable id of the source item (relative path, or file#row for Parquet)
COL_SOURCE_PATH = "source_path"         # the URL the image was read from
COL_LABEL = "label"                     # class index into the manifest's class_names
COL_IMAGE = "image"                     # {bytes: PNG, path: "<sample_id>.png"}
COL_KIND = "kind"                       # "clean" | "discretized" | "adversarial"
COL_TEACHER_LOGITS = "teacher_logits"   # float16 (K,), the teacher's logits on the decoded stored image
COL_TEACHER_PREDICTION = "teacher_prediction"
COL_TEACHER_CONFIDENCE = "teacher_confidence"  # softmax probability of the prediction
COL_ACCEPTED = "accepted"               # clean: always true; discretized/adversarial: teacher predicts the label

IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])

# Feature declaration that makes `datasets.load_dataset("parquet", ...)` decode the image column as an Image.
_HF_FEATURES = {
    COL_SAMPLE_ID: {"dtype": "string", "_type": "Value"},
    COL_SOURCE_ID: {"dtype": "string", "_type": "Value"},
    COL_SOURCE_PATH: {"dtype": "string", "_type": "Value"},
    COL_LABEL: {"dtype": "int64", "_type": "Value"},
    COL_IMAGE: {"_type": "Image"},
    COL_KIND: {"dtype": "string", "_type": "Value"},
    COL_TEACHER_LOGITS: {"feature": {"dtype": "float16", "_type": "Value"}, "_type": "Sequence"},
    COL_TEACHER_PREDICTION: {"dtype": "int64", "_type": "Value"},
    COL_TEACHER_CONFIDENCE: {"dtype": "float32", "_type": "Value"},
    COL_ACCEPTED: {"dtype": "bool", "_type": "Value"},
}

# Fields are declared nullable (the writer never writes a null) because `datasets` only applies the feature
# declaration above to fields equal to its own, and its fields are nullable.
SAMPLE_SCHEMA = pa.schema(
    [
        pa.field(COL_SAMPLE_ID, pa.string()),
        pa.field(COL_SOURCE_ID, pa.string()),
        pa.field(COL_SOURCE_PATH, pa.string()),
        pa.field(COL_LABEL, pa.int64()),
        pa.field(COL_IMAGE, IMAGE_TYPE),
        pa.field(COL_KIND, pa.string()),
        pa.field(COL_TEACHER_LOGITS, pa.list_(pa.float16())),
        pa.field(COL_TEACHER_PREDICTION, pa.int64()),
        pa.field(COL_TEACHER_CONFIDENCE, pa.float32()),
        pa.field(COL_ACCEPTED, pa.bool_()),
    ],
    metadata={
        b"dad_format": f"{FORMAT_NAME}/{FORMAT_VERSION}".encode(),
        b"huggingface": json.dumps({"info": {"features": _HF_FEATURES}}).encode(),
    },
)
COLUMNS = tuple(SAMPLE_SCHEMA.names)

_SHARD_FILE = re.compile(r"^shard-(\d{6,})-([0-9a-f]+)\.parquet$")


def sample_id(set_fingerprint: str, source_id: str, kind: str) -> str:
    """Deterministic id of one row: the same source item, kind and set config always give the same id.

    `set_fingerprint` identifies what generated the set (teacher, discretizer, attack, image size, seed), so
    the same image in two differently generated sets gets two ids, and a re-run of a set gets the same ids.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    key = f"{FORMAT_NAME}/{FORMAT_VERSION}\x00{set_fingerprint}\x00{source_id}\x00{kind}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def shard_file_name(index: int, token: str) -> str:
    """`shard-000042-<token>.parquet`: one name per write attempt, so no attempt overwrites another's file."""
    if index < 0 or not re.fullmatch(r"[0-9a-f]+", token):
        raise ValueError(f"bad shard index/token: {index!r}, {token!r}")
    return f"shard-{index:06d}-{token}.parquet"


def parse_shard_file_name(name: str) -> tuple[int, str] | None:
    """(index, token) of a shard file name, or None if `name` is not one."""
    m = _SHARD_FILE.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def commit_marker_name(index: int) -> str:
    return f"shard-{index:06d}.json"


def image_path(sample: str) -> str:
    """The `path` field of the image struct: a file name `datasets` and humans can use."""
    return f"{sample}.{IMAGE_FORMAT}"
