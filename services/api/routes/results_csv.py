"""/results/csv: every evaluation number with its 95% interval and image count, for a spreadsheet or pandas."""
from __future__ import annotations

import csv
import io
from typing import Sequence

from fastapi import APIRouter
from fastapi.responses import Response

from services.api.catalog import crud
from services.api.catalog.models import Result
from services.api.deps import SessionDep

router = APIRouter(tags=["results"])  # included by routes/results.py, under its /results prefix

CSV_COLUMNS = ("run_id", "model", "suite", "metric", "value", "ci95_low", "ci95_high", "num_images",
               "lower_is_better", "complete", "created_at")


def results_csv(rows: Sequence[Result]) -> str:
    """One line per (run, suite, metric); empty cells where the evaluator recorded no interval or count."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        ci = (r.details or {}).get("ci95") or [None, None]
        writer.writerow([r.run_id, r.model, r.suite, r.metric, r.value, ci[0], ci[1],
                         (r.details or {}).get("num_images"), r.lower_is_better,
                         (r.details or {}).get("complete", True), r.created_at.isoformat()])
    return out.getvalue()


@router.get("/csv", response_class=Response, responses={200: {"content": {"text/csv": {}}, "description": "CSV"}})
def export_results(session: SessionDep) -> Response:
    """All results as CSV (value, 95% interval, image count per run and suite), as a download."""
    return Response(results_csv(crud.list_results(session)), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="results.csv"'})
