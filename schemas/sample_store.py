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

Views (format v3, optional: `--views K` of the generator; see `dad_core.views`): a row may carry K augmented
views of its image -- a random-resized-crop box and a flip each, drawn from the set's seed and the row's
sample_id -- with the teacher's logits on each view's exact pixels, so a student trains on augmented views
with no teacher in memory (FKD, Shen & Xing 2022). The box is in pixels of the image the views are cut from:
`view_image` when the set stores a larger copy of the clean image for cropping (`views.source_size` in the
manifest), else the row's own `image`. Rows without views hold nulls in the view columns.

Perturbation diagnostics (format v4): every adversarial row carries `perturbation`, a struct of float32
measures of what the attack changed (schemas.perturbation.DIAGNOSTIC_NAMES, computed by
dad_core.perturbation): distances of Q(x') to Q(x) and to Q(Q(x)), shares of identical values and changed codes,
the teacher's KL and confidence drop, and the size of the attack's own delta. Null on clean and Q(x) rows and on
every row of older sets; the manifest's `statistics.perturbation` holds their aggregates.

Format versions (the manifest's `format_version`, also `dad_format` in each shard's schema metadata):
- v4 (written now): the `perturbation` column (COL_PERTURBATION) and the manifest's `statistics.perturbation`.
  v1-v3 shards lack the column and read as rows without diagnostics.
- v3: the four view columns (COL_VIEWS...), null on rows without views; the manifest's
  `config.views` says how they were made. v1 and v2 shards lack the columns and read as rows without views.
- v2: `accepted` is defined per kind, null where it does not apply (see COL_ACCEPTED), and the
  schema metadata declares the label column a Hugging Face `ClassLabel` with the set's class names, so the
  HF dataset viewer and `datasets` show names, not indices.
- v1: `accepted` was true on every clean row and "teacher right on Q(x)" on Q(x) rows. v1 sets stay readable:
  readers apply `accepted` to adversarial rows only (`accepted_by_kind`), whatever the version.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Sequence

import pyarrow as pa

from schemas.perturbation import DIAGNOSTIC_NAMES  # noqa: F401 - re-exported: the column's fields

FORMAT_NAME = "dad-sample-set"
FORMAT_VERSION = 4
# v1: `accepted` copied onto clean/Q(x) rows, no class names in the schema; v1 and v2: no view columns;
# v1-v3: no perturbation column
READABLE_FORMAT_VERSIONS = (1, 2, 3, 4)
_SAMPLE_ID_VERSION = 1  # part of every sample id: kept at 1 so ids do not change with the format version

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
# `accepted` answers "does this row enter training as a Q(x') sample?" (DAD's acceptance test, Sec. 3.2), so
# it is defined on adversarial rows only: true when the teacher predicts the label on the stored Q(x'), else
# false. It is null on clean rows (always used, never judged) and on Q(x) rows (inspection only; whether the
# teacher is right there is `teacher_prediction == label`), so `GROUP BY accepted` counts Q(x') verdicts alone.
COL_ACCEPTED = "accepted"
# Views (v3; null on rows without views). Per row, K entries in view order:
COL_VIEWS = "views"                     # list<list<int32>>: [top, left, height, width, flip (0/1)] per view
COL_VIEW_LOGITS = "view_logits"         # list<list<float16>>: the teacher's logits on each view: all C classes,
                                        # or (top-k sets) the k largest then the fill logit of the others
COL_VIEW_CLASSES = "view_classes"       # list<list<int32>>: the k class indices of view_logits (null: full logits)
COL_VIEW_IMAGE = "view_image"           # {bytes: PNG, path}: the larger clean image views are cut from (null:
                                        # they are cut from `image`)
COL_PERTURBATION = "perturbation"     # struct of float32 diagnostics (v4), adversarial rows only; NaN code shares
                                        # where Q has no codes
VIEW_COLUMNS = (COL_VIEWS, COL_VIEW_LOGITS, COL_VIEW_CLASSES, COL_VIEW_IMAGE)
# Default soft-label storage of views: full logits while views x classes <= this (16 KiB of float16 per row),
# else the top VIEWS_AUTO_TOP_K classes (FKD keeps the top 5-10 on ImageNet).
VIEWS_AUTO_FULL_LOGITS = 8192
VIEWS_AUTO_TOP_K = 10

IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
PERTURBATION_TYPE = pa.struct([pa.field(name, pa.float32()) for name in DIAGNOSTIC_NAMES])

# Feature declaration that makes `datasets.load_dataset("parquet", ...)` decode the image column as an Image
# (and, with class names, the label column as a ClassLabel).
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
    COL_VIEWS: {"feature": {"feature": {"dtype": "int32", "_type": "Value"}, "_type": "Sequence"}, "_type": "Sequence"},
    COL_VIEW_LOGITS: {"feature": {"feature": {"dtype": "float16", "_type": "Value"}, "_type": "Sequence"},
                      "_type": "Sequence"},
    COL_VIEW_CLASSES: {"feature": {"feature": {"dtype": "int32", "_type": "Value"}, "_type": "Sequence"},
                       "_type": "Sequence"},
    COL_VIEW_IMAGE: {"_type": "Image"},
    COL_PERTURBATION: {name: {"dtype": "float32", "_type": "Value"} for name in DIAGNOSTIC_NAMES},
}

# Fields are declared nullable (the writer writes nulls only in `accepted`, the view columns and `perturbation`) because `datasets` only applies the
# feature declaration above to fields equal to its own, and its fields are nullable.
_FIELDS = [
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
    pa.field(COL_VIEWS, pa.list_(pa.list_(pa.int32()))),
    pa.field(COL_VIEW_LOGITS, pa.list_(pa.list_(pa.float16()))),
    pa.field(COL_VIEW_CLASSES, pa.list_(pa.list_(pa.int32()))),
    pa.field(COL_VIEW_IMAGE, IMAGE_TYPE),
    pa.field(COL_PERTURBATION, PERTURBATION_TYPE),
]


def sample_schema(class_names: Sequence[str] | None = None) -> pa.Schema:
    """The row schema; with `class_names` its metadata names the classes (`dad_class_names`, and a HF
    `ClassLabel` for the label column), so tools that read only a shard show names, not indices."""
    features = dict(_HF_FEATURES)
    metadata = {b"dad_format": f"{FORMAT_NAME}/{FORMAT_VERSION}".encode()}
    if class_names is not None:
        features[COL_LABEL] = {"names": list(class_names), "_type": "ClassLabel"}
        metadata[b"dad_class_names"] = json.dumps(list(class_names)).encode()
    metadata[b"huggingface"] = json.dumps({"info": {"features": features}}).encode()
    return pa.schema(_FIELDS, metadata=metadata)


SAMPLE_SCHEMA = sample_schema()  # the columns and types; shards carry `sample_schema(class_names)`
COLUMNS = tuple(SAMPLE_SCHEMA.names)


def class_names_of(schema: pa.Schema) -> list[str] | None:
    """The class names a shard's schema declares (v2), or None (v1 shards, or rows built without names)."""
    raw = (schema.metadata or {}).get(b"dad_class_names")
    return None if raw is None else list(json.loads(raw))


def accepted_by_kind(kind: str, stored: bool | None) -> bool | None:
    """`accepted` as format v2 defines it, from a row of any version: the stored verdict on adversarial rows,
    None on clean and Q(x) rows (v1 stored true / the Q(x) verdict there)."""
    return (None if stored is None else bool(stored)) if kind == KIND_ADVERSARIAL else None

_SHARD_FILE = re.compile(r"^shard-(\d{6,})-([0-9a-f]+)\.parquet$")


def sample_id(set_fingerprint: str, source_id: str, kind: str) -> str:
    """Deterministic id of one row: the same source item, kind and set config always give the same id.

    `set_fingerprint` identifies what generated the set (teacher, discretizer, attack, image size, seed), so
    the same image in two differently generated sets gets two ids, and a re-run of a set gets the same ids.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    key = f"{FORMAT_NAME}/{_SAMPLE_ID_VERSION}\x00{set_fingerprint}\x00{source_id}\x00{kind}"
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
