"""/runs/{id}/files/{name} and /runs/{id}/metrics: what a run wrote, for download and for comparing curves.

Only a fixed list of file names can be asked for (no paths), always inside the run's own folder in the store.
"""
from __future__ import annotations

from typing import Annotated, Any, Iterator, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from schemas.api import is_valid_id
from services.api.catalog import crud
from services.api.deps import DIGITS, SessionDep
from services.api.run_control import read_train_metrics
from services.storage import join

router = APIRouter(tags=["runs"])  # included by routes/runs.py, under its /runs prefix

# What a train run writes (services.trainer.checkpointing / .metrics) and what the control plane records.
RUN_FILES: dict[str, str] = {
    "model.pth": "application/octet-stream",   # final weights: timm.create_model(..., checkpoint_path=)
    "model.json": "application/json",          # what model.pth is (timm name, classes, input size)
    "metrics.jsonl": "application/x-ndjson",   # one JSON record per logged step / epoch
    "train_config.json": "application/json",   # the resolved training config
    "run.json": "application/json",            # what was submitted (the control plane's record)
    # an experiment's report run (experiments.pacs): its findings, tables and figures
    "report.md": "text/markdown",
    "report.json": "application/json",
    "results_bar.png": "image/png",
    "attack_grid.png": "image/png",
    "samples_grid.png": "image/png",
}
RunFileName = Literal["model.pth", "model.json", "metrics.jsonl", "train_config.json", "run.json", "report.md",
                      "report.json", "results_bar.png", "attack_grid.png", "samples_grid.png"]
_CHUNK = 1 << 20


class RunMetrics(BaseModel):
    run_id: str
    records: list[dict[str, Any]]


def _run(session, run_id: str):
    run = crud.get_run(session, run_id) if is_valid_id(run_id) else None
    if run is None:
        raise HTTPException(status_code=404, detail=f"no run with id {run_id!r}")
    return run


@router.get("/{run_id}/files/{name}", response_class=StreamingResponse, responses={
    200: {"content": {media: {} for media in sorted(set(RUN_FILES.values()))},
          "description": "the file, as an attachment (media type by name: see RUN_FILES)"}, 404: {}})
def get_run_file(request: Request, session: SessionDep, run_id: Annotated[str, Path()],
                 name: Annotated[RunFileName, Path(description="one of the files a run writes")]) -> StreamingResponse:
    """Download a file of the run's folder: the trained model (model.pth, model.json), metrics.jsonl, ..."""
    run = _run(session, run_id)
    store = request.app.state.store
    path = join(store.run_path(run.id), name)
    try:
        size = store.fs.size(path)
        f = store.fs.open(path, "rb")
    except FileNotFoundError:
        raise HTTPException(status_code=404, detail=f"run {run.id!r} has no {name} (yet)") from None

    def chunks() -> Iterator[bytes]:
        with f:
            while block := f.read(_CHUNK):
                yield block

    headers = {"Content-Disposition": f'attachment; filename="{run.id}-{name}"', "X-Content-Type-Options": "nosniff"}
    if isinstance(size, int):
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks(), media_type=RUN_FILES[name], headers=headers)


@router.get("/{run_id}/metrics", response_model=RunMetrics, responses={404: {}})
def get_run_metrics(request: Request, session: SessionDep, run_id: Annotated[str, Path()],
                    max_points: Annotated[int, Query(ge=10, le=20000, description="step records kept at most "
                                                                                   "(evenly thinned)"), DIGITS] = 2000,
                    ) -> RunMetrics:
    """A train run's metric records (steps thinned to `max_points`, every epoch record kept), without asking
    Ray for its log: what the UI overlays to compare runs."""
    run = _run(session, run_id)
    records = read_train_metrics(request.app.state.store, run.id, max_points) if run.kind == "train" else []
    return RunMetrics(run_id=run.id, records=records)
