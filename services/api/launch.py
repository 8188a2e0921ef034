"""One way to start a job, whoever starts it: the API (Ray's job server), the demo and experiments (local
processes) all go through `start_job`.

A run config (typed, validated: schemas.api) becomes the job's command and config (entrypoints.build_job);
the run record `runs/<id>/run.json` is written first, because the job reads its config from it; then the
launcher starts the job under the run id. A failed start removes the record, so a retry starts clean.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Mapping

from pydantic import BaseModel

from schemas.api import RunRecord, RunStatusRecord, run_config_sha256
from services.api.entrypoints import JobSpec, build_job
from services.api.launcher import META_CONFIG, META_KIND, Launcher
from services.api.store import Store

log = logging.getLogger(__name__)


def start_job(store: Store, launcher: Launcher, kind: str, run_id: str, config: BaseModel, python: str,
              env: Mapping[str, str] | None = None, job: JobSpec | None = None) -> RunRecord:
    """Write the run record of `config` (a JOB_KINDS[kind].run_config), then submit its job; returns the record.
    `job` is the already-built job when the caller checked it first (the API); else it is built here."""
    job = job or build_job(kind, run_id, config, store, python)
    config_dict = config.model_dump(mode="json")
    record = RunRecord(id=run_id, kind=kind, config=config_dict, config_sha256=run_config_sha256(kind, config_dict),
                       entrypoint=job.argv, output_uri=job.output_uri, submitted_at=datetime.now(timezone.utc),
                       sample_set_id=job.sample_set_id or getattr(config, "sample_set", None),
                       job=job.job.model_dump(mode="json"))
    store.write_run_record(record)
    try:
        launcher.submit(run_id, job.entrypoint, {META_KIND: kind, META_CONFIG: record.config_sha256},
                        {"env_vars": dict(env)} if env else {})
    except Exception:
        _forget_record(store, run_id)
        raise
    return record


def record_final_state(store: Store, launcher: Launcher, run_id: str) -> RunStatusRecord | None:
    """Write `status.json` from the launcher's state once the job has ended (None while it runs)."""
    state = launcher.state(run_id)
    if state is None or state.status not in ("SUCCEEDED", "FAILED", "STOPPED"):
        return None
    record = RunStatusRecord(status=state.status, message=state.message, started_at=state.started_at,
                             finished_at=state.finished_at, updated_at=state.finished_at or datetime.now(timezone.utc))
    store.write_run_status(run_id, record)
    return record


def _forget_record(store: Store, run_id: str) -> None:
    try:
        store.fs.rm(store.run_path(run_id), recursive=True)
    except (FileNotFoundError, OSError) as e:
        log.warning("could not remove the run record of %s after a failed submission: %s", run_id, e)
