"""/sample-sets: list, lineage + statistics, and the rows of a set (filtered, paginated)."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from schemas.api import SampleSetDetail, SampleSetsPublic, SamplesPublic, is_valid_id
from services.api.catalog import crud
from services.api.run_control import ConfigError
from services.api.deps import (AUTH_RESPONSES, DECIMAL, DIGITS, MAX_QUERY_INT, Offset, SessionDep,
                               require_read_token)
from services.api.sample_views import sample_set_detail, sample_set_public, samples_page

router = APIRouter(prefix="/sample-sets", tags=["sample sets"], dependencies=[Depends(require_read_token)],
                   responses=AUTH_RESPONSES)


def _get(session, set_id: str):
    s = crud.get_sample_set(session, set_id) if is_valid_id(set_id) else None
    if s is None:
        raise HTTPException(status_code=404, detail=f"no sample set with id {set_id!r}")
    return s


@router.get("", response_model=SampleSetsPublic)
def list_sample_sets(session: SessionDep, offset: Offset = 0,
                     limit: Annotated[int, Query(ge=1, le=500), DIGITS] = 50) -> SampleSetsPublic:
    """Published sample sets in the catalog, newest first."""
    sets, count = crud.list_sample_sets(session, offset, limit)
    return SampleSetsPublic(data=[sample_set_public(s) for s in sets], count=count)


@router.get("/{set_id}", response_model=SampleSetDetail, responses={404: {}})
def get_sample_set(session: SessionDep, set_id: str) -> SampleSetDetail:
    """Lineage (source, teacher, discretizer, attack config, producing run) and statistics, per class too."""
    return sample_set_detail(session, _get(session, set_id))


@router.get("/{set_id}/samples", response_model=SamplesPublic, responses={404: {}})
def list_samples(session: SessionDep, set_id: str,
                 label: Annotated[int | None, Query(ge=0, le=MAX_QUERY_INT, alias="class", description="class index"),
                                  DIGITS] = None,
                 kind: Literal["clean", "discretized", "adversarial"] | None = None,
                 accepted: bool | None = None,
                 min_confidence: Annotated[float | None, Query(ge=0, le=1, description="teacher confidence >="),
                                           DECIMAL] = None,
                 max_confidence: Annotated[float | None, Query(ge=0, le=1, description="teacher confidence <="),
                                           DECIMAL] = None,
                 offset: Offset = 0,
                 limit: Annotated[int, Query(ge=1, le=500), DIGITS] = 100,
                 source: Annotated[str | None, Query(
                     min_length=1, max_length=200, description="substring of the source path (source_id); a search "
                     "reads at most 30,000 rows per request: a page may hold fewer matches, and `next` goes on")] = None,
                 order: Annotated[Literal["stored", "confidence", "-confidence"],
                                  Query(description="stored order, or teacher confidence up / down (-)")] = "stored",
                 after: Annotated[str | None, Query(min_length=3, max_length=70, pattern=crud.CURSOR_PATTERN,
                                                    description="the previous page's `next`: continues after it "
                                                                "(offset is then ignored)")] = None,
                 ) -> SamplesPublic:
    """Rows of the set (stored order unless `order` says otherwise); each carries its pair (clean <->
    adversarial) and image URLs. Page on with `after` = the response's `next`: any depth costs the same."""
    s = _get(session, set_id)
    try:
        page = crud.list_samples(session, s.id, label, kind, accepted, min_confidence, max_confidence, offset, limit,
                                 source=source, order=order, after=after)
    except ValueError as e:  # a cursor of another order, or no cursor at all: a 422 shaped like FastAPI's own
        raise ConfigError(("query", "after"), str(e)) from None
    return samples_page(session, s, page, offset, limit)
