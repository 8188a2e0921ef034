"""The control plane: REST API + web UI over a catalog of the store, launching runs as Ray jobs.

    python -m services.api --store out/store               # serve (see --help)
    python -m services.api.catalog rebuild --store URI      # rebuild the catalog from the store

Layout: `settings` (one BaseSettings), `app` (create_app factory), `routes/` (one router per resource),
`catalog/` (SQLAlchemy tables, crud, Alembic migrations, indexing of the store), `launcher` (Ray Job
Submission), `entrypoints` (job command lines from validated configs), `images` (serving from inside the
store), `sync` (background refresh), `ui/` (static pages).
"""
