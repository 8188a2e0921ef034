"""Optional MLflow tracking for every job: nothing happens (and mlflow is never imported) without a tracking URI.

The URI is MLflow's own `MLFLOW_TRACKING_URI` (in a job's environment; the control plane passes it through
`DAD_JOB_ENV`). The catalog stays the system's own view; MLflow gets a copy where ML teams already look:

    experiment  dad/<sample set>          one per sample set (the generator's --name or its folder name)
      run       generate <set>            params: preset config, source; metrics: acceptance, throughput, counts;
                                          artifact: manifest.json
        run     train <run folder>        nested under the set's generate run; params: the job config; metrics:
                                          every step and epoch record of metrics.jsonl, live; artifacts: model/,
                                          model.json, metrics.jsonl, train_config.json
          run   eval <model>              nested under the train run of the model it scores; metrics per suite:
                                          <suite>.top1 (or .mCE) with .ci95_low / .ci95_high / .num_images
    experiment  dad/<name>                runs with no sample set (ce students, evaluations of other models,
                                          experiment reports) go to the experiment their caller names

A job records its MLflow run in `<its output>/mlflow.json` ({tracking_uri, experiment_id, run_id}), which the
next job reads to nest under it, a re-run reads to continue the same run (a resumed training logs on), and
the control plane reads to link the run. The client is `MlflowClient` with explicit run ids, so Ray Train
workers log to the driver's run without any global MLflow state (Ray's `setup_mlflow` sets that global state
per worker, which would not let a resumed run continue its own MLflow run).
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any, Iterable, Mapping

log = logging.getLogger(__name__)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
RUN_FILE = "mlflow.json"
EXPERIMENT_PREFIX = "dad/"
_MAX_PARAM = 6000  # MLflow's limit on a param value
_BATCH = 900       # under MLflow's 1,000 metrics per log_batch


def tracking_uri() -> str | None:
    return os.environ.get(TRACKING_URI_ENV) or None


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"a.b": "value"} params (lists as JSON, long values cut to MLflow's limit)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            text = v if isinstance(v, str) else json.dumps(v, default=str)
            out[key] = text[:_MAX_PARAM]
    return out


class Tracker:
    """One MLflow run (or nothing: `Tracker(None)` ignores every call). Failures to log are warnings, never
    a failed job: tracking is a copy, the store is the record."""

    def __init__(self, uri: str | None, run_id: str | None = None, experiment_id: str | None = None):
        self.uri, self.run_id, self.experiment_id = uri, run_id, experiment_id
        self._client = None

    @property
    def active(self) -> bool:
        return self.uri is not None and self.run_id is not None

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient  # only with a URI: mlflow stays optional

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    @classmethod
    def start(cls, experiment: str, run_name: str, tags: Mapping[str, str] | None = None,
              parent_run_id: str | None = None, resume: Mapping[str, Any] | None = None,
              uri: str | None = None, experiment_id: str | None = None) -> "Tracker":
        """A new run in `experiment` (created if missing), or the run `resume` names ({run_id, tracking_uri})
        when it is on this server; a no-op Tracker without a tracking URI. `experiment_id` (the parent's)
        takes precedence over the name."""
        uri = uri or tracking_uri()
        if uri is None:
            return cls(None)
        tracker = cls(uri)
        try:
            client = tracker.client
            if resume and resume.get("tracking_uri") == uri and resume.get("run_id"):
                run = client.get_run(resume["run_id"])
                client.update_run(run.info.run_id, status="RUNNING")
                tracker.run_id, tracker.experiment_id = run.info.run_id, run.info.experiment_id
                return tracker
            exp = None if experiment_id else client.get_experiment_by_name(experiment)
            exp_id = experiment_id or (exp.experiment_id if exp is not None else client.create_experiment(experiment))
            all_tags = {**(tags or {}), **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})}
            run = client.create_run(exp_id, run_name=run_name, tags=all_tags)
            tracker.run_id, tracker.experiment_id = run.info.run_id, exp_id
        except Exception as e:  # noqa: BLE001 - a tracking server down must not fail the job
            log.warning("MLflow tracking at %s is off for this job: %s: %s", uri, type(e).__name__, e)
            tracker.run_id = None
        return tracker

    def record(self) -> dict[str, Any]:
        """What `<output>/mlflow.json` holds."""
        return {"tracking_uri": self.uri, "experiment_id": self.experiment_id, "run_id": self.run_id}

    def _safely(self, what: str, fn, *args, **kwargs) -> None:
        if not self.active:
            return
        try:
            fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            log.warning("MLflow: could not log %s to run %s: %s: %s", what, self.run_id, type(e).__name__, e)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import Param

        try:
            existing = self.client.get_run(self.run_id).data.params
        except Exception:  # noqa: BLE001 - logged below if the server is really gone
            existing = {}
        items = [Param(k, v) for k, v in flatten(params).items() if k not in existing]  # params are write-once
        for i in range(0, len(items), 100):
            self._safely("params", self.client.log_batch, self.run_id, params=items[i:i + 100])

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self.log_metric_rows([(k, v, step) for k, v in metrics.items()])

    def log_metric_rows(self, rows: Iterable[tuple[str, Any, int | None]]) -> None:
        """(key, value, step) rows; values that are not finite numbers are skipped."""
        if not self.active:
            return
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(step or 0)) for k, v, step in rows
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        for i in range(0, len(items), _BATCH):
            self._safely("metrics", self.client.log_batch, self.run_id, metrics=items[i:i + _BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.active:
            return
        for k, v in tags.items():
            self._safely("tags", self.client.set_tag, self.run_id, k, str(v))

    def log_files(self, files: Mapping[str, bytes]) -> None:
        """{relative path: bytes} as the run's artifacts (the job's outputs may be on S3: copied via a temp dir)."""
        if not self.active or not files:
            return
        with tempfile.TemporaryDirectory(prefix="dad-mlflow-") as tmp:
            for name, data in files.items():
                path = os.path.join(tmp, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
            self._safely("artifacts", self.client.log_artifacts, self.run_id, tmp)

    def end(self, ok: bool = True) -> None:
        if not self.active:  # (self.client would build a default MLflow store)
            return
        self._safely("status", self.client.set_terminated, self.run_id, "FINISHED" if ok else "FAILED")


def find_run(experiment: str, tags: Mapping[str, str], uri: str | None = None) -> str | None:
    """The newest run of `experiment` with these tags (e.g. the sample set's generate run), or None."""
    uri = uri or tracking_uri()
    if uri is None:
        return None
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        runs = client.search_runs([exp.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None
    except Exception as e:  # noqa: BLE001
        log.warning("MLflow: could not search %s: %s: %s", experiment, type(e).__name__, e)
        return None


def metrics_sink(tracker: Tracker):
    """A MetricsLog callback: step records as `loss`, `lr`, ... and epoch records as `epoch/val_top1`, ...,
    both at the global step (a resumed run logs the steps after its checkpoint again: MLflow keeps both)."""
    skip = {"version", "type", "time", "epoch", "step", "event"}

    def sink(record: Mapping[str, Any]) -> None:
        kind = record.get("type")
        if kind not in ("step", "epoch"):
            return
        prefix = "" if kind == "step" else "epoch/"
        rows = [(prefix + k, v, record.get("step")) for k, v in record.items() if k not in skip]
        if kind == "epoch":
            rows.append(("epoch", record.get("epoch", 0) + 1, record.get("step")))
        tracker.log_metric_rows(rows)

    return sink


def read_run_file(read) -> dict[str, Any] | None:
    """`<output>/mlflow.json` through a `read(name) -> bytes | None` of its folder; None if absent or bad."""
    try:
        data = read(RUN_FILE)
        return json.loads(data) if data else None
    except (OSError, ValueError):
        return None
