"""FastAPI dependencies: a catalog session per request, the run context, and the bearer-token check."""
from __future__ import annotations

import hmac
import re
from typing import Annotated, Iterator

from fastapi import Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from services.api.run_control import RunContext

# Integers reach SQLite, whose INTEGER is 64-bit: bound them well below, so no value can overflow (a 500).
MAX_QUERY_INT = 2**31 - 1


def _written_as(pattern: str, what: str):
    def check(value):
        if isinstance(value, str) and not re.fullmatch(pattern, value):
            raise ValueError(f"must be {what}")
        return value
    return BeforeValidator(check)


# Query numbers read as the OpenAPI types say, not as pydantic's lax parsing reads them ("0.0", "1_000" as
# ints). Put them after Query(...): `Annotated[int, Query(ge=0), DIGITS]` (before it, FastAPI's schema loses
# the bounds).
DIGITS = _written_as(r"-?[0-9]{1,19}", "a whole number written with digits only")
DECIMAL = _written_as(r"-?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?", "a decimal number")
Offset = Annotated[int, Query(ge=0, le=MAX_QUERY_INT, description="rows to skip"), DIGITS]


def single_valued_query(request: Request) -> None:
    """No endpoint takes a list in its query: a repeated parameter is refused, not silently the last one."""
    repeated = sorted({k for k in request.query_params.keys() if len(request.query_params.getlist(k)) > 1})
    if repeated:
        raise RequestValidationError([{"type": "too_many_values", "loc": ("query", k),
                                       "msg": "give this parameter once", "input": request.query_params.getlist(k)}
                                      for k in repeated])

_bearer = HTTPBearer(auto_error=False, description="DAD_AUTH_TOKEN of the server")


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_run_context(request: Request, session: SessionDep) -> RunContext:
    state = request.app.state
    settings = state.settings
    allowed = (state.store.uri, *(settings.allowed_sources or [settings.source_root]))
    return RunContext(session=session, store=state.store, launcher=state.launcher(),
                      job_python=state.job_python, job_env=dict(settings.job_env),
                      log_tail_lines=settings.log_tail_lines, allowed_sources=allowed)


RunContextDep = Annotated[RunContext, Depends(get_run_context)]


# Reads may also carry the token in this cookie (set by the web UI), so <img> requests can send it; mutations
# accept only the header, so a cookie can never make a cross-site request mutate anything.
READ_TOKEN_COOKIE = "dad_token"
AUTH_RESPONSES = {401: {"description": "missing or wrong bearer token (reads need one with --auth-reads)"}}


def _check(settings, given: str) -> None:
    expected = settings.auth_token.get_secret_value().encode()
    if not given or not hmac.compare_digest(given.encode(), expected):
        raise HTTPException(status_code=401, detail="a valid bearer token is required for this endpoint",
                            headers={"WWW-Authenticate": "Bearer"})


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Every mutating endpoint depends on this: 401 without `Authorization: Bearer <DAD_AUTH_TOKEN>`."""
    settings = request.app.state.settings
    if settings.insecure_no_auth:
        return
    _check(settings, credentials.credentials if credentials is not None else "")


def require_read_token(request: Request) -> None:
    """Every read endpoint depends on this: with auth_reads on, the token (header or cookie) is required.

    It reads the header itself rather than through HTTPBearer, so the OpenAPI document does not claim reads
    always need a token (they do only with --auth-reads; the 401 is documented on each route)."""
    settings = request.app.state.settings
    if not settings.auth_reads or settings.insecure_no_auth:
        return
    scheme, _, header_token = request.headers.get("authorization", "").partition(" ")
    _check(settings, header_token.strip() if scheme.lower() == "bearer" else
           request.cookies.get(READ_TOKEN_COOKIE, ""))
