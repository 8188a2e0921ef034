"""/results: evaluation numbers of every eval run, one row per (run, suite, metric), ready to compare."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from schemas.api import ResultPublic, ResultsPublic
from services.api.catalog import crud
from services.api.deps import AUTH_RESPONSES, SessionDep, require_read_token

router = APIRouter(prefix="/results", tags=["results"], dependencies=[Depends(require_read_token)],
                   responses=AUTH_RESPONSES)


@router.get("", response_model=ResultsPublic)
def list_results(session: SessionDep, run_id: str | None = None, suite: str | None = None) -> ResultsPublic:
    """Headline numbers (top-1 %, or mCE % for ImageNet-C) per run and suite; `suites` orders the columns."""
    rows = crud.list_results(session, run_id, suite)
    suites = sorted({r.suite for r in rows})
    return ResultsPublic(data=[ResultPublic.model_validate(r, from_attributes=True) for r in rows], count=len(rows),
                         suites=suites)

from services.api.routes import results_csv  # noqa: E402  (its path lives under /results too)

router.include_router(results_csv.router)
