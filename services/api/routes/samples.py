"""/samples/{id}/image: one image of a sample, read from its shard inside the store."""
from __future__ import annotations

import re
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from services.api.catalog import crud
from services.api.deps import AUTH_RESPONSES, SessionDep, require_read_token
from services.api.images import UnsafePath

router = APIRouter(prefix="/samples", tags=["samples"], dependencies=[Depends(require_read_token)],
                   responses=AUTH_RESPONSES)

_SAMPLE_ID = re.compile(r"^[0-9a-f]{16,64}$")
_NAMES = {"discretized": "Q(x), the discretized un-attacked image,"}


@router.get("/{sample_id}/image", response_class=Response, responses={
    200: {"content": {"image/png": {}}, "description": "PNG image"}, 404: {}})
def get_image(request: Request, session: SessionDep, sample_id: str,
              variant: Literal["clean", "discretized", "adversarial"] | None = None) -> Response:
    """The sample's image, or another variant of the same source item (clean, discretized, adversarial)."""
    sample = crud.get_sample(session, sample_id) if _SAMPLE_ID.fullmatch(sample_id) else None
    if sample is None:
        raise HTTPException(status_code=404, detail=f"no sample with id {sample_id!r}")
    if variant is not None and variant != sample.kind:
        sample = crud.siblings(session, sample.set_id, [sample.source_id]).get((sample.source_id, variant))
        if sample is None:
            raise HTTPException(status_code=404, detail=f"this sample set does not store the {_NAMES.get(variant, variant)} "
                                                        "image of this item")
    sample_set = crud.get_sample_set(session, sample.set_id)
    if sample_set is None:  # its set is being (re)indexed
        raise HTTPException(status_code=404, detail=f"no sample with id {sample_id!r}")
    try:
        data = request.app.state.images.read(sample.set_id, sample_set.shards[sample.shard], sample.row,
                                             sample.sample_id)
    except (UnsafePath, LookupError, FileNotFoundError, IndexError) as e:
        raise HTTPException(status_code=404, detail=f"image unavailable: {e}") from None
    return Response(content=data, media_type="image/png",
                    headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})
