"""HTTP-level errors answered the way the OpenAPI document says.

- 405 carries an `Allow` header listing every method the path takes (Starlette names only the first
  matching route's, so `OPTIONS /runs` said `Allow: POST` although `GET /runs` exists).
- A body FastAPI cannot parse (bytes that are not UTF-8, JSON nested too deep) is a 422 like any other
  malformed JSON, not an undocumented 400.
"""
from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

# FastAPI's message when reading the body raised something other than a JSON decode error.
_BODY_PARSE_ERROR = "There was an error parsing the body"


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document lists for `path` (GET implies HEAD, as Starlette serves both)."""
    if not hasattr(app.state, "_allow_table"):
        app.state._allow_table = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"),
             {m.upper() for m in operations})
            for template, operations in app.openapi()["paths"].items()]
    methods: set[str] = set()
    for pattern, ops in app.state._allow_table:
        if pattern.match(path):
            methods |= ops | ({"HEAD"} if "GET" in ops else set())
    return sorted(methods)


def add_http_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        if e.status_code == 405:
            allow = allowed_methods(app, request.url.path)
            return JSONResponse(status_code=405, content={"detail": "Method Not Allowed"},
                                headers={"Allow": ", ".join(allow)})
        if e.status_code == 400 and e.detail == _BODY_PARSE_ERROR:
            return JSONResponse(status_code=422, content={"detail": [{
                "type": "json_invalid", "loc": ["body"], "msg": "the body is not valid JSON (UTF-8, nested at most "
                                                                "a few hundred levels)"}]})
        return await http_exception_handler(request, e)
