"""services.storage: storage errors name the setting to fix (botocore's exceptions built here; no network)."""
from __future__ import annotations

import pytest
from botocore.exceptions import (ClientError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError,
                                 PartialCredentialsError)
from fsspec.implementations.memory import MemoryFileSystem
from s3fs.errors import translate_boto_error

from services.storage import StorageError, absolute_uri, check_writable, describe_storage_error

URI = "s3://dad/store"


def _s3_refusal(code: str) -> OSError:
    """What s3fs raises for an S3 error response: an OSError whose __cause__ is botocore's ClientError."""
    error = ClientError({"Error": {"Code": code, "Message": f"S3 says {code}"}}, "ListObjectsV2")
    return translate_boto_error(error)


@pytest.mark.parametrize("exc", [NoCredentialsError(),
                                 PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY")])
def test_missing_credentials_name_the_variables_to_set(exc):
    text = describe_storage_error(URI, exc)
    assert text.startswith(type(exc).__name__ + ": ")
    assert "AWS_ACCESS_KEY_ID" in text and "AWS_SECRET_ACCESS_KEY" in text


@pytest.mark.parametrize("exc", [EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
                                 ConnectTimeoutError(endpoint_url="http://minio:9000")])
def test_an_unreachable_endpoint_names_the_endpoint_settings(exc):
    text = describe_storage_error(URI, exc)
    assert "AWS_ENDPOINT_URL_S3" in text and "--storage-option endpoint_url" in text


@pytest.mark.parametrize("code", ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"])
def test_refused_keys_are_told_apart_from_missing_ones(code):
    exc = _s3_refusal(code)
    assert isinstance(exc, PermissionError)
    text = describe_storage_error(URI, exc)
    assert text.startswith(f"PermissionError: S3 says {code}")
    assert f"refused those keys ({code})" in text and "AWS_ACCESS_KEY_ID" in text


def test_a_missing_bucket_is_named():
    text = describe_storage_error(URI, _s3_refusal("NoSuchBucket"))
    assert "bucket 'dad' does not exist" in text


def test_the_cause_is_found_through_an_implicit_context():
    try:
        try:
            raise NoCredentialsError()
        except NoCredentialsError:
            raise RuntimeError("listing failed")  # noqa: B904 - the implicit __context__ is what is tested
    except RuntimeError as e:
        text = describe_storage_error(URI, e)
    assert text.startswith("RuntimeError: listing failed; ") and "AWS_ACCESS_KEY_ID" in text


def test_an_unknown_error_is_reported_as_it_is_on_one_line():
    assert describe_storage_error("/data", PermissionError("denied\n  here")) == "PermissionError: denied here"
    assert describe_storage_error(URI, _s3_refusal("SlowDown")).count(";") == 0


def test_check_writable_names_the_output_and_the_setting():
    class NoCredentials(MemoryFileSystem):
        def pipe_file(self, *args, **kwargs):
            raise NoCredentialsError()

    with pytest.raises(StorageError) as e:
        check_writable(NoCredentials(), "/out")
    assert "'memory:///out' is not writable: NoCredentialsError" in str(e.value)
    assert "AWS_ACCESS_KEY_ID" in str(e.value)


def test_relative_paths_become_absolute_and_urls_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_uri("out/store") == str(tmp_path / "out" / "store")
    assert absolute_uri("file://rel/x") == f"file://{tmp_path / 'rel' / 'x'}"
    assert absolute_uri("s3://bucket/key") == "s3://bucket/key" and absolute_uri(None) is None
    assert absolute_uri("/abs/path") == "/abs/path"


def test_a_missing_relative_path_under_a_ray_job_says_where_relative_paths_resolve(tmp_path, monkeypatch):
    from services.source.listing import SourceError, list_source
    from services.storage import missing_path_hint

    monkeypatch.chdir(tmp_path)
    assert missing_path_hint("data/train") == ""  # not a Ray job: the plain message is enough
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")  # what Ray's job supervisor sets for the driver
    with pytest.raises(SourceError, match="relative paths resolve there: give an absolute path or a store URI"):
        list_source(str(tmp_path / "data" / "train"))
    assert missing_path_hint("s3://bucket/data") == "" and missing_path_hint("/elsewhere/data") == ""


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs (a disk that fills up); skipped, saying why, where mounting is not permitted."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=65536", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_a_write_to_a_full_disk_names_the_file_says_so_and_leaves_no_partial_temp_file(small_tmpfs):
    """A partial temp file would keep the space (and the next attempt would fail too); the error must say where."""
    import os

    from fsspec.implementations.local import LocalFileSystem

    from services.storage import atomic_write_bytes

    target = str(small_tmpfs / "set" / "shards" / "shard-000001-abc.parquet")
    with pytest.raises(OSError) as e:
        atomic_write_bytes(LocalFileSystem(), target, os.urandom(200_000))
    assert e.value.filename == target and e.value.errno == 28
    assert [p.name for p in (small_tmpfs / "set" / "shards").iterdir()] == []  # no .tmp-... left
    message = describe_storage_error(str(small_tmpfs), e.value)
    assert target in message and "filesystem is full" in message and "re-run" in message
    atomic_write_bytes(LocalFileSystem(), target, b"fits")  # the space is free again
    assert open(target, "rb").read() == b"fits"
