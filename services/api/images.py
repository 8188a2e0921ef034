"""Serve sample images from inside the store, and only from there.

An image is addressed by a sample id; its bytes come from the shard file the catalog recorded for it,
resolved below `<store>/sample-sets/<set id>/`. Shard paths come from manifests, which are data, so each
is checked as untrusted input: no '..', no absolute path, no scheme, no URL-encoded variant of those.
"""
from __future__ import annotations

import posixpath
import threading
from collections import OrderedDict
from urllib.parse import unquote

import pyarrow.parquet as pq

from schemas import sample_store as ss
from services.api.store import Store
from services.storage import join

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class UnsafePath(ValueError):
    """A path that would leave its folder (or name another store); the message says why."""


def check_relative_path(path: str) -> str:
    """`path` if it stays inside the folder it is relative to; UnsafePath otherwise.

    Decodes percent-escapes until stable first, so `%2e%2e/`, `%252e%252e/` and friends are seen as `../`.
    """
    decoded = path
    for _ in range(5):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    if not decoded:
        raise UnsafePath("empty path")
    if any(ord(c) < 32 for c in decoded) or "\\" in decoded:
        raise UnsafePath(f"control character or backslash in {path!r}")
    if decoded.startswith("/") or decoded.startswith("~"):
        raise UnsafePath(f"absolute path {path!r}")
    if ":" in decoded.split("/", 1)[0]:
        raise UnsafePath(f"{path!r} names a scheme or drive (file:, s3:, C:)")
    parts = decoded.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"{path!r} has an empty, '.' or '..' segment")
    if decoded != path:
        raise UnsafePath(f"percent-encoded path {path!r}")
    return posixpath.normpath(decoded)


def inside(root: str, relative: str) -> str:
    """`root/relative`, after checking that `relative` cannot climb out of `root`."""
    full = join(root, check_relative_path(relative))
    if not posixpath.normpath(full).startswith(root.rstrip("/") + "/"):
        raise UnsafePath(f"{relative!r} leaves {root!r}")
    return full


class ShardImageReader:
    """Image bytes of one row of a shard, a row group at a time with a small LRU cache.

    A page of the browser shows 100 neighbouring rows, mostly from one row group: one read serves them all.
    """

    def __init__(self, store: Store, max_groups: int = 8):
        self.store = store
        self.max_groups = max_groups
        self._cache: OrderedDict[tuple, tuple[list, list]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, set_id: str, shard_path: str, row: int, sample_id: str) -> bytes:
        """PNG bytes of `row` in `shard_path` (relative to the set); checks the row is `sample_id`."""
        path = inside(self.store.set_path(set_id), shard_path)
        key_base = (set_id, path)
        with self.store.fs.open(path, "rb") as f:
            meta = pq.ParquetFile(f).metadata
            start = 0
            for group in range(meta.num_row_groups):
                n = meta.row_group(group).num_rows
                if row < start + n:
                    break
                start += n
            else:
                raise LookupError(f"row {row} is beyond the end of {shard_path}")
            key = (*key_base, group)
            with self._lock:
                cached = self._cache.get(key)
                if cached is not None:
                    self._cache.move_to_end(key)
            if cached is None:
                table = pq.ParquetFile(f).read_row_group(group, columns=[ss.COL_SAMPLE_ID, ss.COL_IMAGE])
                cached = (table.column(ss.COL_SAMPLE_ID).to_pylist(),
                          table.column(ss.COL_IMAGE).combine_chunks().field("bytes").to_pylist())
                with self._lock:
                    self._cache[key] = cached
                    while len(self._cache) > self.max_groups:
                        self._cache.popitem(last=False)
        ids, images = cached
        if ids[row - start] != sample_id:
            raise LookupError(f"{shard_path} row {row} is {ids[row - start]}, not {sample_id}: rebuild the catalog")
        data = images[row - start]
        if not data.startswith(PNG_MAGIC):
            raise LookupError(f"{shard_path} row {row} does not hold a PNG image")
        return data
