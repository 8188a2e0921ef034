"""Read a published sample set by its manifest: as a torch Dataset or a Ray Dataset.

Readers trust only the manifest: they open exactly the shard files it lists (never a directory listing),
so an unfinished or crashed job's files are invisible. By default a reader gives the training data of
DAD, Eq. (9): every clean row plus the adversarial rows the teacher accepted.
"""
from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import Dataset

from schemas import sample_store as ss
from schemas.manifest import SampleSetManifest
from services.sample_store.rows import decode_png
from services.storage import StorageError, describe_storage_error, join, open_filesystem, storage_errors, to_uri

INDEX_READ_THREADS = 16  # shard indexes read at once when a dataset opens (I/O-bound: round trips)
_INDEX_COLUMNS = [ss.COL_SAMPLE_ID, ss.COL_SOURCE_ID, ss.COL_LABEL, ss.COL_KIND, ss.COL_ACCEPTED,
                  ss.COL_TEACHER_PREDICTION]


def _manifest_location(uri: str, storage_options) -> tuple[Any, str, str]:
    """(fs, manifest path, set folder path); `uri` may name the manifest or the set folder."""
    fs, path = open_filesystem(uri, storage_options)
    if not path.endswith(".json"):
        path = join(path, ss.MANIFEST_NAME)
    return fs, path, path.rsplit("/", 1)[0]


def load_manifest(uri: str, storage_options: Mapping[str, Any] | None = None) -> SampleSetManifest:
    """The manifest at `uri` (a manifest.json or its set folder); a missing one means 'not published'."""
    fs, path, _ = _manifest_location(uri, storage_options)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        raise StorageError(f"no manifest at {to_uri(fs, path)!r}: the sample set is not published "
                           "(still generating, or failed; re-run the generator to finish it)") from None
    except storage_errors() as e:
        uri = to_uri(fs, path)
        raise StorageError(f"cannot read the manifest {uri!r}: {describe_storage_error(uri, e)}") from e
    return SampleSetManifest.from_json(data, to_uri(fs, path))


def shard_uris(uri: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Full URIs of the manifest's shard files, in shard order."""
    fs, _, root = _manifest_location(uri, storage_options)
    return [to_uri(fs, join(root, s.path)) for s in load_manifest(uri, storage_options).shards]


def verify_sample_set(uri: str, storage_options: Mapping[str, Any] | None = None) -> SampleSetManifest:
    """Check every shard's sha256, row count and sample_id uniqueness against the manifest; raise on mismatch."""
    manifest = load_manifest(uri, storage_options)
    fs, _, root = _manifest_location(uri, storage_options)
    seen: set[str] = set()
    for shard in manifest.shards:
        data = fs.cat_file(join(root, shard.path))
        if hashlib.sha256(data).hexdigest() != shard.sha256:
            raise ValueError(f"shard {shard.path} does not match its checksum in the manifest")
        ids = pq.read_table(pa.BufferReader(data), columns=[ss.COL_SAMPLE_ID]).column(0).to_pylist()
        if len(ids) != shard.num_rows:
            raise ValueError(f"shard {shard.path} has {len(ids)} rows, the manifest says {shard.num_rows}")
        dup = seen.intersection(ids)
        if dup or len(set(ids)) != len(ids):
            raise ValueError(f"duplicated sample_id in {shard.path}: {sorted(dup)[:3]}")
        seen.update(ids)
    return manifest


def _selection(table: pa.Table, kinds: Sequence[str], accepted_only: bool) -> pa.Array:
    """Rows of `kinds`; with `accepted_only`, adversarial rows only where accepted (other kinds all stay).

    `is_in` (never null) rather than the `accepted` column itself: clean and Q(x) rows hold null there (v2).
    """
    mask = pc.is_in(table[ss.COL_KIND], value_set=pa.array(list(kinds)))
    if accepted_only:
        kept = pc.or_(pc.not_equal(table[ss.COL_KIND], ss.KIND_ADVERSARIAL),
                      pc.is_in(table[ss.COL_ACCEPTED], value_set=pa.array([True])))
        mask = pc.and_(mask, kept)
    return mask


def _check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in ss.KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {ss.KINDS}, got {kinds}")
    return kinds


class SampleSetDataset(Dataset):
    """Map-style torch Dataset over a sample set's rows.

    Item: {"image": float (3, S, S) in [0, 1] (or `transform(PIL image)`), "label", "teacher_logits" (float32
    (K,), exactly the stored float16 values), "teacher_prediction", "teacher_confidence", "kind",
    "accepted" (adversarial rows: the teacher's verdict; None on other kinds, in v1 sets too), "sample_id",
    "source_id"}. Rows are read a row group at a time and a few groups are cached,
    so sequential or shard-local access is cheap; `index` (a pyarrow Table) lets samplers and the trainer
    pair each x with its Q(x') by `source_id`.
    """

    def __init__(self, manifest_uri: str, kinds: Sequence[str] = ss.TRAINING_KINDS, accepted_only: bool = True,
                 transform: Callable | None = None, storage_options: Mapping[str, Any] | None = None,
                 cache_row_groups: int = 4):
        self.kinds = _check_kinds(kinds)
        self.storage_options = dict(storage_options or {})
        self.manifest = load_manifest(manifest_uri, self.storage_options)
        fs, _, root = _manifest_location(manifest_uri, self.storage_options)
        self._fs = fs
        self._paths = [join(root, s.path) for s in self.manifest.shards]
        self.transform = transform
        self._cache_size = cache_row_groups
        self._cache: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()
        self._group_starts: dict[int, np.ndarray] = {}

        def read_index(shard_pos: int) -> pa.Table:
            with fs.open(self._paths[shard_pos], "rb") as f:
                pf = pq.ParquetFile(f)
                self._group_starts[shard_pos] = np.cumsum([0] + [pf.metadata.row_group(g).num_rows
                                                                 for g in range(pf.num_row_groups)])
                t = pf.read(columns=_INDEX_COLUMNS)
            t = t.append_column("shard", pa.array(np.full(t.num_rows, shard_pos, np.int32)))
            t = t.append_column("row", pa.array(np.arange(t.num_rows, dtype=np.int64)))
            return t.filter(_selection(t, self.kinds, accepted_only))

        # Shard indexes in parallel: on object storage each is a round trip (~1,300 shards at ImageNet size,
        # one after another was most of a trainer's start); `map` keeps shard order.
        with ThreadPoolExecutor(max_workers=min(INDEX_READ_THREADS, max(1, len(self._paths)))) as pool:
            parts = list(pool.map(read_index, range(len(self._paths))))
        self.index: pa.Table = pa.concat_tables(parts) if parts else pa.table({c: [] for c in _INDEX_COLUMNS})
        self._shard_col = self.index["shard"].to_numpy() if parts else np.zeros(0, np.int32)
        self._row_col = self.index["row"].to_numpy() if parts else np.zeros(0, np.int64)

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest.config.class_names)

    def __len__(self) -> int:
        return self.index.num_rows

    def _row_group(self, shard_pos: int, group: int) -> pa.Table:
        key = (shard_pos, group)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        with self._fs.open(self._paths[shard_pos], "rb") as f:
            table = pq.ParquetFile(f).read_row_group(group)
        self._cache[key] = table
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return table

    def record(self, i: int) -> dict[str, Any]:
        """Row i as stored (column name -> Python value); v1/v2 rows have no view columns."""
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        shard_pos, row = int(self._shard_col[i]), int(self._row_col[i])
        starts = self._group_starts[shard_pos]
        group = int(np.searchsorted(starts, row, side="right") - 1)
        return self._row_group(shard_pos, group).slice(row - int(starts[group]), 1).to_pylist()[0]

    @property
    def num_views(self) -> int:
        """K, the views stored per row of the kinds that carry them (0: a set without views, any version)."""
        views = self.manifest.config.views
        return views.count if views is not None else 0

    def view(self, i: int, v: int) -> dict[str, Any]:
        """View v of row i: {"image": the view's pixels, rebuilt by dad_core.views.render_view from the stored
        image (float (3, S, S) in [0, 1], or `transform(PIL image)`), "teacher_logits": float32 (C,), the
        teacher's logits on exactly those pixels, "label", "kind", "sample_id", "source_id"}."""
        from dad_core.views import View, expand_logits, render_view

        rec = self.record(i)
        boxes = rec.get(ss.COL_VIEWS)
        if not boxes or not 0 <= v < len(boxes):
            have = len(boxes) if boxes else 0
            raise IndexError(f"row {i} ({rec[ss.COL_KIND]}) of {self.manifest.name!r} has {have} views, asked for "
                             f"view {v}")
        source = rec.get(ss.COL_VIEW_IMAGE) or rec[ss.COL_IMAGE]
        top, left, height, width, flip = boxes[v]
        pixels = render_view(decode_png(source["bytes"]), View(top, left, height, width, bool(flip)),
                             self.manifest.config.image_size, self.manifest.config.views.interpolation)
        classes = rec.get(ss.COL_VIEW_CLASSES)
        logits = expand_logits(np.asarray([rec[ss.COL_VIEW_LOGITS][v]], dtype=np.float16),
                               None if classes is None else np.asarray([classes[v]]), len(self.class_names))[0]
        if self.transform is not None:
            image = self.transform(Image.fromarray(pixels, "RGB"))
        else:
            image = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255)  # (3, S, S)
        return {"image": image, "teacher_logits": torch.from_numpy(logits), "label": rec[ss.COL_LABEL],
                "kind": rec[ss.COL_KIND], "sample_id": rec[ss.COL_SAMPLE_ID], "source_id": rec[ss.COL_SOURCE_ID]}

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.record(i)
        png = rec[ss.COL_IMAGE]["bytes"]
        if self.transform is not None:
            image = self.transform(Image.open(io.BytesIO(png)).convert("RGB"))
        else:
            image = torch.from_numpy(decode_png(png)).permute(2, 0, 1).float().div_(255)  # (3, S, S)
        logits = np.asarray(rec[ss.COL_TEACHER_LOGITS], dtype=np.float16)
        return {
            "image": image,
            "label": rec[ss.COL_LABEL],
            "teacher_logits": torch.from_numpy(logits.astype(np.float32)),
            "teacher_prediction": rec[ss.COL_TEACHER_PREDICTION],
            "teacher_confidence": rec[ss.COL_TEACHER_CONFIDENCE],
            "kind": rec[ss.COL_KIND],
            "accepted": ss.accepted_by_kind(rec[ss.COL_KIND], rec[ss.COL_ACCEPTED]),
            "sample_id": rec[ss.COL_SAMPLE_ID],
            "source_id": rec[ss.COL_SOURCE_ID],
        }


def open_sample_set(manifest_uri: str, kinds: Sequence[str] = ss.TRAINING_KINDS, accepted_only: bool = True,
                    transform: Callable | None = None,
                    storage_options: Mapping[str, Any] | None = None) -> SampleSetDataset:
    """A torch Dataset of the set; `kinds=("adversarial",)` gives the accepted Q(x') samples alone."""
    return SampleSetDataset(manifest_uri, kinds, accepted_only, transform, storage_options)


def to_ray_dataset(manifest_uri: str, kinds: Sequence[str] = ss.TRAINING_KINDS, accepted_only: bool = True,
                   storage_options: Mapping[str, Any] | None = None, columns: Sequence[str] | None = None):
    """A ray.data Dataset of the set's rows (the stored schema; images stay PNG bytes in `image`)."""
    import ray.data
    from pyarrow.fs import FSSpecHandler, PyFileSystem
    from ray.data.expressions import col, lit

    kinds = _check_kinds(kinds)
    fs, _, root = _manifest_location(manifest_uri, storage_options)
    manifest = load_manifest(manifest_uri, storage_options)
    if not manifest.shards:
        raise ValueError(f"sample set {manifest_uri!r} has no shards")
    paths = [join(root, s.path) for s in manifest.shards]
    ds = ray.data.read_parquet(paths, filesystem=PyFileSystem(FSSpecHandler(fs)))
    expr = col(ss.COL_KIND).is_in(list(kinds))
    if accepted_only:  # never null (see _selection): clean and Q(x) rows hold null in `accepted`
        expr = expr & ((col(ss.COL_KIND) != lit(ss.KIND_ADVERSARIAL)) | col(ss.COL_ACCEPTED).is_in([True]))
    if set(kinds) != set(ss.KINDS) or accepted_only:  # also drops Q(x) rows unless asked for
        ds = ds.filter(expr=expr)
    return ds.select_columns(list(columns)) if columns else ds
