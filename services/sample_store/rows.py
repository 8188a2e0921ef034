"""Build sample-store rows (schemas.sample_store.sample_schema) from arrays: pure, no I/O."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa
from PIL import Image

from schemas import sample_store as ss
from schemas.perturbation import DIAGNOSTIC_NAMES

# zlib level 1: about 3x faster than the default 6 for ~10% larger files; PNG stays lossless either way.
PNG_COMPRESS_LEVEL = 1


def encode_png(pixels: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes (lossless: decode_png gives the same array back)."""
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> (H, W, 3) uint8."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


@dataclass
class TeacherVerdicts:
    """The teacher's judgement of one kind of image for a batch (numpy, ready to store)."""

    logits: np.ndarray       # (B, K) float16
    prediction: np.ndarray   # (B,) int64
    confidence: np.ndarray   # (B,) float32
    accepted: np.ndarray     # (B,) bool; stored for adversarial rows only (schemas.sample_store.COL_ACCEPTED)


@dataclass
class StoredViews:
    """K augmented views of each item of a batch with the teacher's soft labels on each (format v3)."""

    boxes: np.ndarray                # (B, K, 5) int32: top, left, height, width, flip (dad_core.views.View)
    logits: np.ndarray               # (B, K, L) float16: full logits (L = C), or top-k values + fill (L = k + 1)
    classes: np.ndarray | None = None  # (B, K, k) int32 class indices of top-k logits; None: full logits


@dataclass
class SampleBatch:
    """One batch of source items with both images and the teacher's verdict on each, as it will be stored."""

    source_ids: list[str]
    source_paths: list[str]
    labels: np.ndarray           # (B,) int64
    clean: np.ndarray            # (B, S, S, 3) uint8
    adversarial: np.ndarray      # (B, S, S, 3) uint8, Q(x') rounded to the stored pixels
    clean_verdicts: TeacherVerdicts
    adversarial_verdicts: TeacherVerdicts
    discretized: np.ndarray | None = None               # (B, S, S, 3) uint8 Q(x), when stored
    discretized_verdicts: TeacherVerdicts | None = None
    clean_views: StoredViews | None = None              # views of x, when the set has views
    adversarial_views: StoredViews | None = None        # views of Q(x'), when asked for
    view_images: np.ndarray | None = None               # (B, V, V, 3) uint8: the larger image views are cut from
    perturbation: dict[str, np.ndarray] | None = None   # diagnostic name -> (B,) float32 (dad_core.perturbation)

    def __len__(self) -> int:
        return len(self.source_ids)


def build_rows(set_fingerprint: str, batches: Sequence[SampleBatch], compress_level: int = PNG_COMPRESS_LEVEL,
               class_names: Sequence[str] | None = None) -> pa.Table:
    """Rows for every item of `batches`: clean, then Q(x) if stored, then Q(x') (an item's rows stay adjacent).

    `accepted` is written on adversarial rows only (null on clean and Q(x) rows, format v2); `class_names`
    go into the schema metadata (a Hugging Face ClassLabel for `label`); views (v3) go on the rows they
    belong to, nulls elsewhere; perturbation diagnostics (v4) on adversarial rows.
    """
    schema = ss.sample_schema(class_names)
    cols: dict[str, list] = {name: [] for name in ss.COLUMNS}
    for batch in batches:
        for i in range(len(batch)):
            kinds = [(ss.KIND_CLEAN, batch.clean, batch.clean_verdicts, batch.clean_views)]
            if batch.discretized is not None:
                kinds.append((ss.KIND_DISCRETIZED, batch.discretized, batch.discretized_verdicts, None))
            kinds.append((ss.KIND_ADVERSARIAL, batch.adversarial, batch.adversarial_verdicts, batch.adversarial_views))
            for kind, pixels, verdicts, views in kinds:
                sid = ss.sample_id(set_fingerprint, batch.source_ids[i], kind)
                cols[ss.COL_SAMPLE_ID].append(sid)
                cols[ss.COL_SOURCE_ID].append(batch.source_ids[i])
                cols[ss.COL_SOURCE_PATH].append(batch.source_paths[i])
                cols[ss.COL_LABEL].append(int(batch.labels[i]))
                cols[ss.COL_IMAGE].append({"bytes": encode_png(pixels[i], compress_level), "path": ss.image_path(sid)})
                cols[ss.COL_KIND].append(kind)
                cols[ss.COL_TEACHER_LOGITS].append(verdicts.logits[i])
                cols[ss.COL_TEACHER_PREDICTION].append(int(verdicts.prediction[i]))
                cols[ss.COL_TEACHER_CONFIDENCE].append(float(verdicts.confidence[i]))
                cols[ss.COL_ACCEPTED].append(bool(verdicts.accepted[i]) if kind == ss.KIND_ADVERSARIAL else None)
                cols[ss.COL_VIEWS].append(None if views is None else views.boxes[i])
                cols[ss.COL_VIEW_LOGITS].append(None if views is None else views.logits[i])
                cols[ss.COL_VIEW_CLASSES].append(None if views is None or views.classes is None else views.classes[i])
                large = batch.view_images is not None and kind == ss.KIND_CLEAN
                cols[ss.COL_VIEW_IMAGE].append({"bytes": encode_png(batch.view_images[i], compress_level),
                                                "path": f"{sid}-views.{ss.IMAGE_FORMAT}"} if large else None)
                diag = batch.perturbation if kind == ss.KIND_ADVERSARIAL else None
                cols[ss.COL_PERTURBATION].append(None if diag is None else
                                                 {name: float(diag[name][i]) for name in DIAGNOSTIC_NAMES})
    logits = cols.pop(ss.COL_TEACHER_LOGITS)
    nested = {name: cols.pop(name) for name in (ss.COL_VIEWS, ss.COL_VIEW_LOGITS, ss.COL_VIEW_CLASSES)}
    arrays = {name: pa.array(values, type=schema.field(name).type) for name, values in cols.items()}
    arrays[ss.COL_TEACHER_LOGITS] = _float16_lists(logits)
    arrays[ss.COL_VIEWS] = _nested_lists(nested[ss.COL_VIEWS], np.int32, pa.int32())
    arrays[ss.COL_VIEW_LOGITS] = _nested_lists(nested[ss.COL_VIEW_LOGITS], np.float16, pa.float16())
    arrays[ss.COL_VIEW_CLASSES] = _nested_lists(nested[ss.COL_VIEW_CLASSES], np.int32, pa.int32())
    return pa.Table.from_arrays([arrays[name] for name in ss.COLUMNS], schema=schema)


def _float16_lists(rows: list[np.ndarray]) -> pa.Array:
    """list<float16> from (K,) float16 arrays, bit-exact (no round trip through Python floats)."""
    flat = np.concatenate(rows).astype(np.float16) if rows else np.zeros(0, np.float16)
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=pa.float16()))


def _nested_lists(rows: list[np.ndarray | None], dtype, arrow_type: pa.DataType) -> pa.Array:
    """list<list<T>> from (K, L) arrays (None: a null row), bit-exact like `_float16_lists`."""
    present = [np.asarray(r, dtype=dtype).reshape(len(r), -1) for r in rows if r is not None]
    views_per_row = [0 if r is None else len(r) for r in rows]
    outer = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(views_per_row, out=outer[1:])
    lengths = [r.shape[1] for r in present for _ in range(len(r))]
    inner = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=inner[1:])
    flat = np.concatenate([r.ravel() for r in present]).astype(dtype) if present else np.zeros(0, dtype)
    views = pa.ListArray.from_arrays(pa.array(inner), pa.array(flat, type=arrow_type))
    mask = pa.array([r is None for r in rows], type=pa.bool_())
    return pa.ListArray.from_arrays(pa.array(outer), views, mask=mask)
