"""`python -m services.api`: serve the control plane (REST API + web UI) with uvicorn.

Every flag has a DAD_* environment variable (flags win):

    DAD_AUTH_TOKEN=... python -m services.api --store out/store --ray-address http://127.0.0.1:8265
    python -m services.api --insecure-no-auth          # local experiments only: mutations need no token

Before serving it opens the catalog database and lists the store root; if either fails it exits with status 2
and a message naming the setting to fix (`services.api.startup`).
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from pydantic import ValidationError

from services.jobs.cli import key_value



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    p.add_argument("--ray-address", help="Ray job server, e.g. http://127.0.0.1:8265 [DAD_RAY_ADDRESS] "
                                         "(default: join the local Ray, or start one)")
    p.add_argument("--store", dest="store_uri", help="object store root: local folder or s3:// URL [DAD_STORE_URI] "
                                                     "(default: out/store)")
    p.add_argument("--storage-option", action="append", type=key_value, metavar="KEY=VALUE", dest="storage_options",
                   help="fsspec option for an s3:// store, e.g. endpoint_url=http://127.0.0.1:9000 (repeatable) "
                        "[DAD_STORAGE_OPTIONS as JSON]; give credentials through the environment (AWS_*)")
    p.add_argument("--database", dest="database_url",
                   help="catalog database URL [DAD_DATABASE_URL] (default: sqlite:///<store>/catalog.db)")
    p.add_argument("--auth-token", help="bearer token for mutating endpoints [DAD_AUTH_TOKEN]; prefer the env var "
                                        "(flags show up in `ps`)")
    p.add_argument("--insecure-no-auth", action="store_true", default=None,
                   help="accept mutations without a token [DAD_INSECURE_NO_AUTH] (never on a shared network)")
    p.add_argument("--allowed-sources", action="append", metavar="URI_PREFIX", dest="allowed_sources",
                   help="a location prefix requests may read inputs from, e.g. s3://datasets/imagenet (repeatable) "
                        "[DAD_ALLOWED_SOURCES as JSON]; the store is always allowed (default: the store and local "
                        "paths under --source-root)")
    p.add_argument("--source-root", help="local folder whose paths requests may name [DAD_SOURCE_ROOT] "
                                         "(default: /, any local path)")
    p.add_argument("--auth-reads", action=argparse.BooleanOptionalAction, default=None,
                   help="require the token on reads too (runs, logs, sample sets, images, results) [DAD_AUTH_READS] "
                        "(default: on when --host is not a loopback address)")
    p.add_argument("--log-level", default="info")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from services.api.settings import Settings

    given = {k: v for k, v in vars(args).items()
             if k not in ("host", "port", "log_level") and v is not None}
    if "storage_options" in given:
        given["storage_options"] = dict(given["storage_options"])
    try:
        settings = Settings(**given)
    except ValidationError as e:
        for err in e.errors():
            print(f"error: {err['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    from services.api.settings import with_read_auth_for
    from services.api.startup import check_database, check_store

    settings = with_read_auth_for(settings, args.host)
    if not settings.auth_reads:
        logging.getLogger("services.api").warning(
            "reads need no token: anyone who can reach %s:%s sees runs, their command lines and logs, sample sets "
            "and images (--auth-reads to require it)", args.host, args.port)

    problem = check_database(settings.database_url) or check_store(settings.store_uri, settings.storage_options)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    import uvicorn

    from services.api.app import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level.lower())
    return 0


if __name__ == "__main__":
    sys.exit(main())
