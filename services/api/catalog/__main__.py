"""`python -m services.api.catalog rebuild --store URI [--database URL]`: recreate the catalog from the store.

    python -m services.api.catalog rebuild --store out/store
    python -m services.api.catalog rebuild --store s3://bucket/dad --database postgresql://... \\
        --storage-option endpoint_url=http://127.0.0.1:9000
    python -m services.api.catalog migrate --database URL     # only bring the schema up to date

The store is only read. Runs come from runs/*/run.json (+ status.json), sample sets from
sample-sets/*/manifest.json, results from the eval runs' results/ folders.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from services.jobs.cli import key_value



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.api.catalog", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    rebuild = sub.add_parser("rebuild", help="empty the catalog and index everything in the store")
    rebuild.add_argument("--store", required=True, help="store root (local folder or s3:// URL)")
    rebuild.add_argument("--database", help="catalog URL (default: sqlite:///<store>/catalog.db)")
    rebuild.add_argument("--storage-option", action="append", default=[], type=key_value, metavar="KEY=VALUE")
    migrate = sub.add_parser("migrate", help="bring the catalog schema to the newest version")
    migrate.add_argument("--database", required=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from services.api.catalog.db import create_catalog_engine, migrate, session_factory

    if args.command == "migrate":
        engine = create_catalog_engine(args.database)
        migrate(engine)
        print(f"catalog schema is up to date: {engine.url.render_as_string(hide_password=True)}")
        return 0
    from services.api.catalog.ingest import rebuild
    from services.api.settings import Settings
    from services.api.store import Store

    options = dict(args.storage_option)
    settings = Settings(store_uri=args.store, storage_options=options, database_url=args.database,
                        insecure_no_auth=True)  # only for the default database location; nothing is served
    engine = create_catalog_engine(settings.database_url)
    migrate(engine)
    with session_factory(engine)() as session:
        report = rebuild(session, Store(args.store, options))
    print(f"catalog {engine.url.render_as_string(hide_password=True)} rebuilt from {args.store}: "
          f"{report.runs} runs, {report.sample_sets} sample sets ({report.samples} rows), {report.results} results")
    for line in report.skipped:
        print(f"  skipped {line}", file=sys.stderr)
    return 0 if not report.skipped else 1


if __name__ == "__main__":
    sys.exit(main())
