"""`create_app(settings)`: the control plane's FastAPI application (REST API + web UI).

Nothing happens at import. At startup the catalog is migrated to the newest schema, the Ray job server is
found (or a local Ray started: `local_ray`), and the background sync begins; at shutdown they stop in
reverse order.
"""
from __future__ import annotations

import hashlib
import logging
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from services.api.catalog.db import create_catalog_engine, migrate, session_factory
from services.api.deps import single_valued_query
from services.api.http_errors import add_http_error_handlers
from services.api.images import ShardImageReader
from services.api.launcher import JobConflict, Launcher, RayJobLauncher, RayUnavailable, default_ray_token
from services.api.local_ray import DEFAULT_JOB_SERVER, LocalRay, find_local_job_server
from services.api.routes import results, runs, sample_sets, samples, ui
from services.api.run_control import ConfigError, RunConflict
from services.api.settings import Settings
from services.api.store import Store
from services.api.sync import CatalogSync
from services.storage import cache_dir

log = logging.getLogger("services.api")

DESCRIPTION = """\
Control plane of Discrete Adversarial Distillation: submit generate / train / eval runs as Ray jobs, browse
sample sets (clean | Q(x) | adversarial with the teacher's top-5), follow runs, compare evaluation results.

Mutating endpoints need `Authorization: Bearer <DAD_AUTH_TOKEN>`. The web UI is at [/ui/](/ui/).
"""


def create_app(settings: Settings, launcher: Launcher | None = None) -> FastAPI:
    """The application for `settings`; `launcher` replaces the Ray job server (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = app.state
        state.engine = create_catalog_engine(settings.database_url)
        migrate(state.engine)
        state.sessions = session_factory(state.engine)
        if settings.insecure_no_auth:
            log.warning("!!! INSECURE: --insecure-no-auth is set: anyone who can reach this server can start and "
                        "stop jobs on the Ray cluster !!!")
        state.local_ray, state.sync = None, None
        try:
            _connect_launcher(state, settings, launcher)
            state.sync = CatalogSync(state.sessions, state.store, state.launcher, settings.sync_interval_s)
            state.sync.start()
            yield
        finally:
            if state.sync is not None:
                state.sync.stop()
            state.engine.dispose()
            if state.local_ray is not None:
                state.local_ray.stop()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the package, not from a CDN.
    app = FastAPIOffline(title="DAD control plane", version="1", description=DESCRIPTION, lifespan=lifespan,
                         dependencies=[Depends(single_valued_query)])
    app.state.settings = settings
    app.state.store = Store(settings.store_uri, settings.storage_options)
    app.state.images = ShardImageReader(app.state.store)
    for module in (runs, sample_sets, samples, results, ui):
        app.include_router(module.router)
    ui.mount_ui(app)
    _add_error_handlers(app)
    return app


def _connect_launcher(state, settings: Settings, launcher: Launcher | None) -> None:
    """`state.launcher()` gives the launcher; the Ray client is created on first use, so a server whose
    Ray is down still starts, serves the catalog, and answers 503 to what needs Ray."""
    state.job_python = settings.job_python
    if launcher is not None:
        state.launcher = lambda: launcher
        return
    address = settings.ray_address
    token = settings.ray_auth_token.get_secret_value() if settings.ray_auth_token else None
    if address is None and (found := find_local_job_server(token or default_ray_token(), DEFAULT_JOB_SERVER)):
        address = found  # the Ray that `ray start --head` runs on this machine, and it accepts our token
        log.warning("joining the Ray job server found on this machine at %s (--ray-address to choose one)", address)
    elif address is None:
        # One per store: a server restarted after a crash rejoins the Ray (and the jobs) it left running.
        key = hashlib.sha256(settings.store_uri.encode()).hexdigest()[:16]
        state.local_ray = LocalRay(state_file=Path(cache_dir()) / "local-ray" / f"{key}.json")
        address = state.local_ray.start()
        token = state.local_ray.token
        if settings.job_python == "python":
            state.job_python = sys.executable  # our own Ray runs jobs on this machine: use this interpreter
    ray_launcher = RayJobLauncher(address, token, settings.ray_timeout_s)
    state.launcher: Callable[[], Launcher] = lambda: ray_launcher
    log.info("Ray job server: %s", ray_launcher.address)


def _add_error_handlers(app: FastAPI) -> None:
    add_http_error_handlers(app)

    @app.exception_handler(ConfigError)
    async def _config_error(_: Request, e: ConfigError):
        return JSONResponse(status_code=422, content={"detail": [{"loc": list(e.loc), "msg": str(e),
                                                                  "type": "value_error"}]})

    @app.exception_handler(RayUnavailable)
    async def _ray_unavailable(_: Request, e: RayUnavailable):
        return JSONResponse(status_code=503, content={"detail": str(e)}, headers={"Retry-After": "10"})

    @app.exception_handler(RunConflict)
    @app.exception_handler(JobConflict)
    async def _conflict(_: Request, e: Exception):
        return JSONResponse(status_code=409, content={"detail": str(e)})
