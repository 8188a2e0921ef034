"""/runs: submit (idempotent by id), list, inspect, stop."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response
from fastapi import status as http

from schemas.api import RunCreate, RunDetail, RunKind, RunPublic, RunsPublic, RunStatus, is_valid_id
from services.api.catalog import crud
from services.api.deps import DIGITS, Offset, RunContextDep, require_read_token, require_token
from services.api.run_control import run_detail, run_public, stop_run, submit_run

router = APIRouter(prefix="/runs", tags=["runs"], dependencies=[Depends(require_read_token)],
                   responses={401: {"description": "missing or wrong bearer token (reads need one with --auth-reads)"}})

RunId = Annotated[str, Path(description="the run id given at submission")]
_AUTH = {401: {"description": "missing or wrong bearer token"}}
_RAY = {503: {"description": "the Ray job server is unreachable; nothing was recorded"}}


def _get(ctx, run_id: str):
    run = crud.get_run(ctx.session, run_id) if is_valid_id(run_id) else None
    if run is None:
        raise HTTPException(status_code=404, detail=f"no run with id {run_id!r}")
    return run


@router.post("", response_model=RunPublic, status_code=http.HTTP_201_CREATED, dependencies=[Depends(require_token)],
             responses={200: {"model": RunPublic, "description": "this id was already submitted with the same "
                                                                   "config: the existing run, no new job"},
                        409: {"description": "the id is used by a different run"}, 422: {}, **_AUTH, **_RAY})
def create_run(ctx: RunContextDep, response: Response, body: Annotated[RunCreate, Body()]) -> RunPublic:
    """Submit a generate, train or eval run as a Ray job. A retry with the same id and config returns the
    existing run (200) and never starts a second job."""
    run, created = submit_run(ctx, body.id, body.kind, body.config)
    if not created:
        response.status_code = http.HTTP_200_OK
    return run_public(run)


@router.get("", response_model=RunsPublic)
def list_runs(ctx: RunContextDep, kind: RunKind | None = None, status: RunStatus | None = None,
              offset: Offset = 0, limit: Annotated[int, Query(ge=1, le=500), DIGITS] = 50) -> RunsPublic:
    """Runs, newest first; statuses are kept current by the server's background sync with Ray."""
    runs, count = crud.list_runs(ctx.session, kind, status, offset, limit)
    return RunsPublic(data=[run_public(r) for r in runs], count=count)


@router.get("/{run_id}", response_model=RunDetail, responses={404: {}})
def get_run(ctx: RunContextDep, run_id: RunId) -> RunDetail:
    """Status, config, metrics so far (train), live progress (generate) and the job's log tail."""
    return run_detail(ctx, _get(ctx, run_id))


@router.post("/{run_id}/stop", response_model=RunPublic, dependencies=[Depends(require_token)],
             responses={404: {}, **_AUTH, **_RAY})
def stop(ctx: RunContextDep, run_id: RunId) -> RunPublic:
    """Ask Ray to stop the run's job (a finished run is returned as it is)."""
    return run_public(stop_run(ctx, _get(ctx, run_id)))


from services.api.routes import run_outputs  # noqa: E402  (its paths live under /runs too)

router.include_router(run_outputs.router)
