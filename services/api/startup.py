"""Checks `python -m services.api` runs before it serves: the catalog database opens and the store root lists.

A wrong DAD_DATABASE_URL or DAD_STORE_URI (or S3 endpoint, or missing credentials) then stops the server with
one line naming the setting, instead of a traceback, or a server that starts and only logs errors.
"""
from __future__ import annotations

from typing import Any, Mapping

import fsspec

from services.storage import StorageError, describe_storage_error, open_filesystem, storage_errors

# botocore's default (up to 5 attempts with back-off) turns a wrong endpoint into 5-15 s of silence.
_QUICK_S3_RETRIES = {"total_max_attempts": 2}


def check_database(url: str) -> str | None:
    """None if the catalog database accepts a connection; else a message naming DAD_DATABASE_URL, with the
    URL's password hidden."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from services.api.catalog.db import create_catalog_engine

    setting = "(DAD_DATABASE_URL / --database)"
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"cannot open the catalog database {setting}: not a database URL (dialect+driver://user@host/name)"
    try:
        engine = create_catalog_engine(url)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except (SQLAlchemyError, ImportError, OSError) as e:
        cause = getattr(e, "orig", None) or e  # the driver's own error, without SQLAlchemy's boilerplate
        detail = f"{type(cause).__name__}: {' '.join(str(cause).split())}"
        if parsed.password:
            detail = detail.replace(parsed.password, "***")
        return f"cannot open the catalog database {parsed.render_as_string(hide_password=True)} {setting}: {detail}"
    return None


def check_store(uri: str, storage_options: Mapping[str, Any] | None = None) -> str | None:
    """None if the store root can be listed (a root not written yet is fine: the first run makes it); else a
    message naming DAD_STORE_URI and, where the cause is known, the setting to fix."""
    options = dict(storage_options or {})
    if fsspec.core.split_protocol(uri)[0] in ("s3", "s3a"):
        options["config_kwargs"] = {**options.get("config_kwargs", {}), "retries": dict(_QUICK_S3_RETRIES)}
    try:
        fs, root = open_filesystem(uri, options)
        fs.ls(root)
    except FileNotFoundError as e:
        if e.__cause__ is None:  # no folder or prefix yet; a missing *bucket* carries S3's NoSuchBucket as cause
            return None
        return _store_message(uri, e)
    except (StorageError, *storage_errors()) as e:
        return _store_message(uri, e)
    return None


def _store_message(uri: str, e: BaseException) -> str:
    return f"cannot read the store {uri} (DAD_STORE_URI / --store): {describe_storage_error(uri, e)}"
