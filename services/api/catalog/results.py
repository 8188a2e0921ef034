"""Evaluation results of an eval run, read from its run folder (`<run>/results/<id>.json`, written by
services.evaluator; format schemas.results.EvaluationResult) into comparable rows: one number per
(run, suite, metric). The control plane never imports the evaluator."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from schemas.results import RESULTS_DIR, EvaluationResult, parse_evaluation
from services.api.catalog.models import Result, Run
from services.api.store import Store
from services.storage import join

log = logging.getLogger(__name__)


def read_evaluations(store: Store, run_id: str) -> list[EvaluationResult]:
    """The run's readable result files, oldest first (an unreadable one is logged and left out)."""
    folder = join(store.run_path(run_id), RESULTS_DIR)
    try:
        store.fs.invalidate_cache(folder)
        files = sorted(p for p in store.fs.find(folder, maxdepth=1) if p.endswith(".json"))
    except FileNotFoundError:
        return []  # the run wrote no result (failed before scoring)
    out = []
    for path in files:
        data = store.read_bytes(path)
        try:
            out.append(parse_evaluation(data, path)) if data is not None else None
        except ValueError as e:
            log.warning("skipping result %s: %s", path, e)
    return sorted(out, key=lambda r: _utc(r.created_at))


def read_results(store: Store, run: Run) -> list[Result]:
    rows: dict[tuple[str, str], Result] = {}
    for evaluation in read_evaluations(store, run.id):
        created = _utc(evaluation.created_at)
        for m in evaluation.metrics:
            suite = evaluation.suites.get(m.suite, {})
            rows[(m.suite, m.metric)] = Result(   # a later evaluation of the same suite wins
                run_id=run.id, model=evaluation.name or run.id, suite=m.suite, metric=m.metric,
                value=float(m.value), lower_is_better=m.lower_is_better, created_at=created,
                details={"evaluation_id": evaluation.id, "ci95": m.ci95, "num_images": m.num_images,
                         "column": suite.get("column"), "complete": suite.get("complete", True)})
    return list(rows.values())


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
