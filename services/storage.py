"""fsspec storage at the edge: one way to open a URL, write a file atomically, and check an output early.

Every service takes a URL (plain path, `file://`, `s3://`, ...) plus optional `storage_options` (fsspec
keyword arguments such as `endpoint_url` for an S3-compatible server). Options apply to remote URLs only,
so one set of options serves a local source and an S3 output alike.
"""
from __future__ import annotations

import os
import posixpath
import uuid
from typing import Any, Mapping

import fsspec
from fsspec.implementations.local import LocalFileSystem


class StorageError(RuntimeError):
    """A URL that cannot be read or written; the message names the URL."""


def open_filesystem(uri: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path inside it) for a URL; `storage_options` are ignored for local paths."""
    protocol = fsspec.core.split_protocol(uri)[0] or "file"
    options = dict(storage_options or {}) if protocol not in ("file", "local") else {}
    try:
        fs, path = fsspec.core.url_to_fs(uri, **options)
    except (ImportError, ValueError, TypeError) as e:
        raise StorageError(f"cannot open {uri!r}: {e}") from e
    return fs, path.rstrip("/") or path


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def to_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The full URL of a path (`file:///...`, `s3://bucket/...`)."""
    return fs.unstrip_protocol(path)


def join(path: str, *parts: str) -> str:
    return posixpath.join(path, *parts)


def atomic_write_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write `data` so that readers see either nothing or the whole file.

    Local disk: write a temporary sibling, then rename (atomic on POSIX). Object stores (S3): one PUT is
    already all-or-nothing.
    """
    if is_local(fs):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def check_writable(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Fail now, naming the URL, if `path` cannot take files (rather than after an hour of generation)."""
    probe = join(path, f".write-probe-{uuid.uuid4().hex}")
    try:
        if is_local(fs):
            fs.makedirs(path, exist_ok=True)  # object stores have no folders (and s3fs would create a bucket)
        fs.pipe_file(probe, b"ok")
        fs.rm_file(probe)
    except Exception as e:  # noqa: BLE001 - any backend error means "not writable", reported with its cause
        raise StorageError(f"output {to_uri(fs, path)!r} is not writable: {type(e).__name__}: {e}") from e
