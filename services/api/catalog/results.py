"""Evaluation results of an eval run, read from its run folder (`<run>/results/<id>.json`, written by
services.evaluator) into comparable rows: one number per (run, suite, metric)."""
from __future__ import annotations

from datetime import datetime, timezone

from services.api.catalog.models import Result, Run
from services.api.store import Store


def read_results(store: Store, run: Run) -> list[Result]:
    from services.evaluator.results import ResultError, list_results

    try:
        evaluations = list_results(store.run_uri(run.id), store.storage_options)  # oldest first
    except ResultError:
        return []  # the run wrote no result (failed before scoring)
    rows: dict[tuple[str, str], Result] = {}
    for evaluation in evaluations:
        created = _time(evaluation.get("created_at"))
        suites = evaluation.get("suites", {})
        for m in evaluation.get("metrics", []):
            suite = suites.get(m["suite"], {})
            rows[(m["suite"], m["metric"])] = Result(   # a later evaluation of the same suite wins
                run_id=run.id, model=str(evaluation.get("name", run.id)), suite=m["suite"], metric=m["metric"],
                value=float(m["value"]), lower_is_better=bool(m.get("lower_is_better")), created_at=created,
                details={"evaluation_id": evaluation.get("id"), "ci95": m.get("ci95"),
                         "num_images": m.get("num_images"), "column": suite.get("column"),
                         "complete": suite.get("complete", True)})
    return list(rows.values())


def _time(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    t = datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
