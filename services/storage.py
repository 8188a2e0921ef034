"""fsspec storage at the edge: one way to open a URL, write a file atomically, check an output early, and say
which setting to fix when a URL fails (`describe_storage_error`).

Every service takes a URL (plain path, `file://`, `s3://`, ...) plus optional `storage_options` (fsspec
keyword arguments such as `endpoint_url` for an S3-compatible server). Options apply to remote URLs only,
so one set of options serves a local source and an S3 output alike.
"""
from __future__ import annotations

import errno
import os
import posixpath
import uuid
from typing import Any, Mapping

import fsspec
from fsspec.implementations.local import LocalFileSystem


class StorageError(RuntimeError):
    """A URL that cannot be read or written; the message names the URL."""


# The setting to fix, by what the object store said (botocore's exception, or S3's error code).
_SET_CREDENTIALS = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an instance role)"
_CHECK_ENDPOINT = "check AWS_ENDPOINT_URL_S3 or --storage-option endpoint_url"
_REFUSED_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied")


def cache_dir() -> str:
    """Where the code keeps small files between runs on this machine: $DAD_CACHE_DIR, else
    $XDG_CACHE_HOME (or ~/.cache)/dad."""
    return os.environ.get("DAD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dad")


def storage_errors() -> tuple[type[Exception], ...]:
    """What a filesystem call raises for a wrong URL, endpoint or credentials: OSError (s3fs turns S3's refusals
    into it) and botocore's own errors (no credentials, no connection), which s3fs passes on as they are."""
    from botocore.exceptions import BotoCoreError, ClientError  # s3fs's dependency; imported only on failure

    return (OSError, BotoCoreError, ClientError)


def describe_storage_error(uri: str, exc: BaseException) -> str:
    """`exc` on one line, followed by the setting to fix when its cause is a known one (credentials, endpoint,
    refused keys, missing bucket). Walks `__cause__`/`__context__`: s3fs re-raises S3's answer as an OSError."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    hint = next((h for e in _chain(exc) if (h := _hint(uri, e))), None)
    return f"{text}; {hint}" if hint else text


def _chain(exc: BaseException | None):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _hint(uri: str, e: BaseException) -> str | None:
    from botocore import exceptions as boto

    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the filesystem is full: free space there, then re-run the same command (finished work is kept)"
    if isinstance(e, (boto.NoCredentialsError, boto.PartialCredentialsError)):
        return _SET_CREDENTIALS
    if isinstance(e, (boto.ConnectionError, boto.HTTPClientError)):  # refused, timed out, closed, TLS, proxy
        return _CHECK_ENDPOINT
    code = e.response.get("Error", {}).get("Code") if isinstance(e, boto.ClientError) else None
    if code in _REFUSED_CODES:
        return f"the store refused those keys ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if code == "NoSuchBucket":
        bucket = fsspec.core.split_protocol(uri)[1].split("/")[0]
        return f"the bucket {bucket!r} does not exist: create it, or fix the URL"
    return None


def open_filesystem(uri: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path inside it) for a URL; `storage_options` are ignored for local paths."""
    protocol = fsspec.core.split_protocol(uri)[0] or "file"
    options = dict(storage_options or {}) if protocol not in ("file", "local") else {}
    try:
        fs, path = fsspec.core.url_to_fs(uri, **options)
    except (ImportError, ValueError, TypeError) as e:
        raise StorageError(f"cannot open {uri!r}: {describe_storage_error(uri, e)}") from e
    return fs, path.rstrip("/") or path


def absolute_uri(uri: str | None) -> str | None:
    """A plain relative path made absolute (Ray workers run in another directory); URLs are left alone."""
    if uri is None or fsspec.core.split_protocol(uri)[0] not in (None, "file", "local"):
        return uri
    return "file://" + os.path.abspath(uri.removeprefix("file://")) if uri.startswith("file://") else os.path.abspath(uri)


def missing_path_hint(uri: str) -> str:
    """For a "does not exist" message: under a Ray job (`ray job submit --working-dir .` runs the job in an
    uploaded copy of that folder) a relative local path resolves inside the copy; say so. '' elsewhere."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:  # set by Ray's job supervisor for the job's driver
        return ""
    protocol, path = fsspec.core.split_protocol(uri)
    cwd = os.getcwd()
    if protocol not in (None, "file", "local") or (os.path.isabs(path) and not path.startswith(cwd + os.sep)):
        return ""
    return (f" (this Ray job runs in {cwd}, with --working-dir a copy that Ray uploaded, and relative paths "
            "resolve there: give an absolute path or a store URI such as s3://bucket/...)")


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def to_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The full URL of a path (`file:///...`, `s3://bucket/...`)."""
    return fs.unstrip_protocol(path)


def join(path: str, *parts: str) -> str:
    return posixpath.join(path, *parts)


def atomic_write_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write `data` so that readers see either nothing or the whole file.

    Local disk: write a temporary sibling, then rename (atomic on POSIX); a failed write (a full disk) removes
    its partial temp file, which would hold on to the space, and names `path` in the error. Object stores (S3):
    one PUT is already all-or-nothing.
    """
    if is_local(fs):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            try:
                os.remove(tmp)
            except OSError:
                pass
            if e.filename is None:  # write()/fsync() errors (ENOSPC) name no file
                raise OSError(e.errno, e.strerror, path) from e
            raise
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
        uri = to_uri(fs, path)
        raise StorageError(f"output {uri!r} is not writable: {describe_storage_error(uri, e)}") from e


class StoreFolder:
    """One folder on any fsspec URL, and the file operations every store layout builds on: the API's store root,
    a sample set's folder (sample_store.writer) and a training run's folder (trainer.checkpointing).

    Names are relative to the folder; `write` is atomic (`atomic_write_bytes`), `read` gives None for a missing
    file. Subclasses add their layout (which names hold what), never another way to reach the storage.
    """

    def __init__(self, uri: str, storage_options: Mapping[str, Any] | None = None):
        self.storage_options = dict(storage_options or {})
        self.fs, self.path = open_filesystem(uri, self.storage_options)
        self.uri = to_uri(self.fs, self.path)

    def path_of(self, *names: str) -> str:
        return join(self.path, *names)

    def uri_of(self, *names: str) -> str:
        return to_uri(self.fs, self.path_of(*names))

    def read(self, name: str) -> bytes | None:
        try:
            return self.fs.cat_file(self.path_of(name))
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        atomic_write_bytes(self.fs, self.path_of(name), data)

    def exists(self, name: str) -> bool:
        return self.fs.exists(self.path_of(name))

    def list(self, folder: str) -> list[str]:
        """Full paths in a subfolder (fresh listing: writers elsewhere change it), [] if it does not exist."""
        path = self.path_of(folder)
        self.fs.invalidate_cache(path)
        try:
            return self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []

    def check_writable(self) -> None:
        check_writable(self.fs, self.path)
