"""Runs: submit (idempotent by id), refresh status from Ray, stop, and the detail view (metrics, log tail).

Order of a submission, so that a failure leaves nothing half-made in the catalog:
validate -> same id already in the catalog? (same config: return it; other config: conflict) ->
Ray reachable? -> run record into the store -> submit to Ray (submission_id = run id) -> catalog row.
A retry after any failure repeats the same steps and converges on one job and one row.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from schemas.results import METRICS_NAME, parse_metrics
from schemas.api import TERMINAL_STATUSES, RunDetail, RunPublic, RunStatusRecord, run_config_sha256
from services.api.catalog import crud
from services.api.catalog.ingest import run_from_record
from services.api.catalog.models import Run
from services.api.entrypoints import JobSpec, build_job
from services.api.launch import start_job
from services.api.launcher import Launcher, RayUnavailable
from services.api.source_policy import is_allowed, request_locations
from services.api.store import Store
from services.storage import join
from services.tracking import read_run_file  # reads mlflow.json only: mlflow itself is never imported here

log = logging.getLogger(__name__)


_ANSI_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Preset fields a caller may not override: full unpickling of a checkpoint runs code from the file.
_LOCKED_FIELDS = frozenset({"trust_checkpoint"})


class ConfigError(ValueError):
    """A run config that is well-formed but wrong (unknown preset field, unknown sample set, ...)."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.loc = loc


class RunConflict(RuntimeError):
    """The run id is taken by a different run."""


@dataclass
class RunContext:
    """What run operations need; built once per request from the app's state."""

    session: Session
    store: Store
    launcher: Launcher
    job_python: str
    job_env: dict[str, str]
    log_tail_lines: int = 200
    allowed_sources: tuple[str, ...] = ("/",)  # input prefixes requests may name (source_policy)


def check_config(ctx: RunContext, kind: str, config) -> None:
    """Checks the schema cannot make: inputs lie where this server may read, referenced ids exist, no locked
    preset field. (The preset, overrides, objective and the job's cross-field rules were checked when the body
    was parsed: schemas.jobs.)"""
    for loc, uri in request_locations(kind, config):
        if not is_allowed(uri, ctx.allowed_sources):
            raise ConfigError(("body", kind, "config", *loc),
                              f"{uri!r} is outside the locations this server reads from "
                              f"({', '.join(ctx.allowed_sources)}); the operator can allow it with --allowed-sources")
    if kind in ("generate", "train"):
        for key in config.overrides:
            if key.rsplit(".", 1)[-1] in _LOCKED_FIELDS:
                raise ConfigError(("body", kind, "config", "overrides", key),
                                  f"{key} cannot be set through the API (unpickling runs code from the file); "
                                  "set it on the cluster if you trust the checkpoint")
    if kind == "train" and config.sample_set and crud.get_sample_set(ctx.session, config.sample_set) is None:
        raise ConfigError(("body", kind, "config", "sample_set"),
                          f"unknown sample set {config.sample_set!r}: GET /sample-sets lists them")
    if kind == "eval" and config.model_run:
        trained = crud.get_run(ctx.session, config.model_run)
        if trained is None or trained.kind != "train":
            raise ConfigError(("body", kind, "config", "model_run"),
                              f"{config.model_run!r} is not a train run in the catalog")


def _build_job(ctx: RunContext, kind: str, run_id: str, config) -> JobSpec:
    """The job's own config from the run config; a refusal (none expected: the run config carries the job's
    rules) is a 422 like any other, before anything is written."""
    try:
        return build_job(kind, run_id, config, ctx.store, ctx.job_python)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(("body", kind, "config", *err["loc"]), err["msg"]) from None


def submit_run(ctx: RunContext, run_id: str, kind: str, config) -> tuple[Run, bool]:
    """(run, created): submit a new run, or return the run this id already names (same kind and config)."""
    config_sha = run_config_sha256(kind, config.model_dump(mode="json"))
    existing = crud.get_run(ctx.session, run_id)
    if existing is not None:
        if existing.config_sha256 != config_sha:
            raise RunConflict(f"run id {run_id!r} is already used by a different {existing.kind} run; "
                              "a retry must send the same kind and config")
        return existing, False
    check_config(ctx, kind, config)
    job = _build_job(ctx, kind, run_id, config)
    if job.sample_set_id:
        for other in crud.active_runs(ctx.session):
            if other.kind == "generate" and other.sample_set_id == job.sample_set_id:
                raise RunConflict(f"run {other.id!r} is still generating sample set {job.sample_set_id!r}")
    ctx.launcher.state(run_id)  # reachability probe: RayUnavailable before anything is written
    record = start_job(ctx.store, ctx.launcher, kind, run_id, config, ctx.job_python, ctx.job_env, job)
    return crud.insert_run(ctx.session, run_from_record(record)), True


def refresh_run(ctx: RunContext, run: Run) -> Run:
    """Ask Ray for the run's status (non-terminal runs only); a terminal status is also written to the store."""
    if run.status in TERMINAL_STATUSES:
        return run
    state = ctx.launcher.state(run.id)
    if state is None:
        outcome = outcome_from_store(ctx.store, run)
        if outcome is not None:
            _set_status(ctx, run, *outcome)
        elif run.status != "UNKNOWN":
            crud.set_run_status(ctx.session, run, "UNKNOWN", "Ray does not know this job (cluster restarted?)")
        return run
    _set_status(ctx, run, state.status, state.message, state.started_at, state.finished_at)
    return run


def _set_status(ctx: RunContext, run: Run, status: str, message: str, started_at=None, finished_at=None) -> None:
    """The catalog row, and the store's status.json once terminal (what `catalog rebuild` reads back)."""
    if crud.set_run_status(ctx.session, run, status, message, started_at, finished_at) \
            and status in TERMINAL_STATUSES:
        ctx.store.write_run_status(run.id, RunStatusRecord(status=run.status, message=run.message,
                                                           started_at=run.started_at, finished_at=run.finished_at,
                                                           updated_at=run.updated_at))


def outcome_from_store(store: Store, run: Run) -> tuple[str, str, datetime, datetime] | None:
    """(status, message, started_at, finished_at) of a run Ray no longer knows, from what its outputs say:
    a generate run whose set status says it succeeded (its manifest is published) or failed. Else None: the
    job may have died with its cluster at any point, and only "UNKNOWN" is honest."""
    if run.kind != "generate" or not run.sample_set_id:
        return None
    status = store.generation_status(run.sample_set_id)
    if status is None or status.state not in ("succeeded", "failed") or _utc(status.updated_at) < _utc(run.submitted_at):
        return None  # still running when Ray lost it, or the status of an earlier run on the same set
    if status.state == "succeeded" and store.manifest_bytes(run.sample_set_id) is None:
        return None
    why = "Ray does not know this job (cluster restarted?); its sample set's status says it "
    return (("SUCCEEDED", why + "succeeded") if status.state == "succeeded"
            else ("FAILED", why + f"failed: {status.message}")) + (status.started_at, status.updated_at)


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC times


def stop_run(ctx: RunContext, run: Run) -> Run:
    if run.status not in TERMINAL_STATUSES:
        ctx.launcher.stop(run.id)
    return refresh_run(ctx, run)


def run_public(run: Run) -> RunPublic:
    return RunPublic.model_validate(run, from_attributes=True)


def run_detail(ctx: RunContext, run: Run) -> RunDetail:
    """Status (refreshed when Ray answers), config, metrics so far, generator progress and the log tail."""
    log_tail, log_error = None, None
    try:
        refresh_run(ctx, run)
        text = _ANSI_ESCAPES.sub("", ctx.launcher.logs(run.id))  # Ray colours its worker prefixes
        log_tail = "\n".join(text.splitlines()[-ctx.log_tail_lines:])
    except RayUnavailable as e:
        log_error = str(e)
    except RuntimeError as e:  # Ray no longer has the job's logs
        log_error = log_unavailable_message(e)
    metrics: list[dict[str, Any]] = []
    progress = None
    if run.kind == "train":
        metrics = read_train_metrics(ctx.store, run.id)
    if run.kind == "generate" and run.sample_set_id:
        status = ctx.store.generation_status(run.sample_set_id)
        progress = status.model_dump(mode="json") if status else None
    return RunDetail(**run_public(run).model_dump(), entrypoint=run.entrypoint, metrics=metrics,
                     progress=progress, log_tail=log_tail, log_error=log_error, mlflow=mlflow_link(ctx.store, run))


def mlflow_link(store: Store, run: Run) -> dict[str, Any] | None:
    """The MLflow run a train job recorded in its folder (services.tracking's mlflow.json), with a UI link."""
    if run.kind != "train":
        return None
    record = read_run_file(lambda name: store.read_bytes(join(store.run_path(run.id), name)))
    if not record or not record.get("run_id") or not str(record.get("tracking_uri", "")).startswith("http"):
        return None
    url = f"{record['tracking_uri'].rstrip('/')}/#/experiments/{record['experiment_id']}/runs/{record['run_id']}"
    return {**record, "url": url}


def log_unavailable_message(error: Exception) -> str:
    """A sentence for a person instead of Ray's raw HTTP error (e.g. '404 ... Job ... does not exist')."""
    text = str(error)
    if any(word in text.lower() for word in ("404", "does not exist", "not found")):
        return ("Ray has no log for this job: it ran on a Ray cluster that has since restarted, or it was "
                "recorded without Ray (e.g. by `make demo`). Its outputs in the store are unaffected.")
    first = text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__
    return f"the log could not be read from Ray: {first}"


def read_train_metrics(store: Store, run_id: str, max_points: int = 2000) -> list[dict[str, Any]]:
    """The trainer's metric records (de-duplicated across resumes), thinned to at most `max_points` steps."""
    data = store.read_bytes(join(store.run_path(run_id), METRICS_NAME))
    if data is None:
        return []
    records = parse_metrics(data.decode(errors="replace").splitlines())
    steps = [r for r in records if r.get("type") == "step"]
    if len(steps) > max_points:
        keep = set(map(id, steps[::-(-len(steps) // max_points)] + steps[-1:]))
        records = [r for r in records if r.get("type") != "step" or id(r) in keep]
    return records
