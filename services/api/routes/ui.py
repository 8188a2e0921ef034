"""The web UI: static HTML/JS/CSS from services/api/ui, plus the server facts the pages need."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

router = APIRouter(tags=["ui"])


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/health", tags=["health"])
def health(request: Request) -> dict:
    """Liveness, and whether mutations need a token."""
    settings = request.app.state.settings
    return {"status": "ok", "auth": "disabled" if settings.insecure_no_auth else "bearer",
            "auth_reads": bool(settings.auth_reads and not settings.insecure_no_auth),
            "store": request.app.state.store.uri}


def mount_ui(app) -> None:
    app.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="ui")
