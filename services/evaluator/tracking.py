"""The evaluator's MLflow run (services.tracking; nothing without MLFLOW_TRACKING_URI): nested under the train
run of the model it scores (read from the mlflow.json beside the model), else in `dad/evaluations`."""
from __future__ import annotations

import json
import posixpath
import re
from typing import Any, Mapping

from services.evaluator.models import ModelSpec
from services.storage import open_filesystem
from services.tracking import EXPERIMENT_PREFIX, RUN_FILE, Tracker, tracking_uri

EXPERIMENT = EXPERIMENT_PREFIX + "evaluations"


def model_run(spec: ModelSpec, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The trainer's mlflow.json of a run folder (or of the folder holding model.pth), or None."""
    if spec.kind != "student":
        return None
    try:
        fs, path = open_filesystem(spec.source, storage_options)
        folder = path if fs.isdir(path) else posixpath.dirname(path)
        return json.loads(fs.cat_file(posixpath.join(folder, RUN_FILE)))
    except (OSError, ValueError):
        return None


def metric_key(suite: str, name: str) -> str:
    """MLflow keys allow letters, digits, _ - . / and spaces: a suite label like imagefolder:/x is cleaned."""
    return re.sub(r"[^\w\-./ ]", "_", f"{suite}.{name}")


def start_evaluation(spec: ModelSpec, storage_options: Mapping[str, Any] | None = None) -> Tracker:
    if tracking_uri() is None:
        return Tracker(None)
    parent = model_run(spec, storage_options) or {}
    same_server = parent.get("tracking_uri") == tracking_uri()
    return Tracker.start(EXPERIMENT, f"eval {spec.label}", {"dad.kind": "eval", "dad.model": spec.source},
                         parent_run_id=parent.get("run_id") if same_server else None,
                         experiment_id=parent.get("experiment_id") if same_server else None)


def track_result(tracker: Tracker, result: Mapping[str, Any]) -> None:
    """Every suite's headline metric with its 95% interval and image count; the result JSON as an artifact."""
    if not tracker.active:
        return
    tracker.log_params({"model": result["model"], "settings": {k: v for k, v in result["settings"].items()
                                                                if k != "mlflow"}, "result_id": result["id"]})
    metrics: dict[str, Any] = {}
    for row in result["metrics"]:
        metrics[metric_key(row["suite"], row["metric"])] = row["value"]
        if row.get("ci95"):
            metrics[metric_key(row["suite"], "ci95_low")], metrics[metric_key(row["suite"], "ci95_high")] = row["ci95"]
        metrics[metric_key(row["suite"], "num_images")] = row.get("num_images")
    tracker.log_metrics(metrics)
    tracker.log_files({f"{result['id']}.json": json.dumps(result, indent=2).encode()})
    tracker.end(ok=True)
