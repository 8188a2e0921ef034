"""The store as the control plane sees it: where sample sets and run folders live, and the few files it reads.

    <store>/sample-sets/<set id>/manifest.json ...   written by services.generator (--out <store>/sample-sets)
    <store>/runs/<run id>/run.json                     what was submitted (written by the control plane)
    <store>/runs/<run id>/status.json                  the last status the control plane saw
    <store>/runs/<run id>/...                          the job's own outputs (trainer, evaluator)

Every path is built from a validated id (`schemas.api.ID_PATTERN`) below the store root; nothing a caller
sends is used as a path.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from typing import Any

from schemas import sample_store as ss
from schemas.api import RunRecord, RunStatusRecord, is_valid_id, run_config_sha256
from schemas.generation_status import GenerationStatus
from services.storage import StoreFolder, atomic_write_bytes, join, to_uri

log = logging.getLogger(__name__)

SAMPLE_SETS_DIR = "sample-sets"
RUNS_DIR = "runs"
RUN_RECORD = "run.json"
RUN_STATUS = "status.json"


class Store(StoreFolder):
    """One store root (local folder or object-store URL) and its layout."""

    @property
    def root(self) -> str:
        return self.path

    # -- locations ----------------------------------------------------------------------------------------
    def _child(self, *parts: str) -> str:
        for part in parts:
            if not is_valid_id(part) and part not in (SAMPLE_SETS_DIR, RUNS_DIR, RUN_RECORD, RUN_STATUS):
                raise ValueError(f"not a valid store id: {part!r}")
        return join(self.root, *parts)

    def sample_sets_uri(self) -> str:
        return to_uri(self.fs, join(self.root, SAMPLE_SETS_DIR))

    def set_path(self, set_id: str) -> str:
        return self._child(SAMPLE_SETS_DIR, set_id)

    def set_uri(self, set_id: str) -> str:
        return to_uri(self.fs, self.set_path(set_id))

    def manifest_uri(self, set_id: str) -> str:
        return to_uri(self.fs, join(self.set_path(set_id), ss.MANIFEST_NAME))

    def run_path(self, run_id: str) -> str:
        return self._child(RUNS_DIR, run_id)

    def run_uri(self, run_id: str) -> str:
        return to_uri(self.fs, self.run_path(run_id))

    def run_record_uri(self, run_id: str) -> str:
        """`runs/<id>/run.json`: also the config file the run's job reads (`--config`)."""
        return to_uri(self.fs, join(self.run_path(run_id), RUN_RECORD))

    # -- listing --------------------------------------------------------------------------------------------
    def list_set_ids(self) -> list[str]:
        """Ids of published sets (those with a manifest); folders with other names are ignored."""
        return self._ids_with(SAMPLE_SETS_DIR, ss.MANIFEST_NAME)

    def list_run_ids(self) -> list[str]:
        return self._ids_with(RUNS_DIR, RUN_RECORD)

    def _ids_with(self, folder: str, file_name: str) -> list[str]:
        pattern = join(self.root, folder, "*", file_name)
        self.fs.invalidate_cache()  # s3fs caches listings (children too): jobs publish behind our back
        try:
            found = self.fs.glob(pattern)
        except FileNotFoundError:
            return []
        ids = sorted({p.rstrip("/").split("/")[-2] for p in found})
        return [i for i in ids if is_valid_id(i)]

    # -- files ----------------------------------------------------------------------------------------------
    def read_bytes(self, path: str) -> bytes | None:
        """A file by its full path below the root (None if missing)."""
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None

    def manifest_bytes(self, set_id: str) -> bytes | None:
        return self.read_bytes(join(self.set_path(set_id), ss.MANIFEST_NAME))

    def generation_status(self, set_id: str) -> GenerationStatus | None:
        data = self.read_bytes(join(self.set_path(set_id), ss.STATUS_NAME))
        if data is None:
            return None
        try:
            return GenerationStatus.model_validate_json(data)
        except ValueError:
            return None  # advisory file, possibly mid-write on a store without atomic renames

    def write_run_record(self, record: RunRecord) -> None:
        atomic_write_bytes(self.fs, join(self.run_path(record.id), RUN_RECORD), record.model_dump_json(indent=2).encode())

    def read_run_record(self, run_id: str) -> RunRecord | None:
        data = self.read_bytes(join(self.run_path(run_id), RUN_RECORD))
        return RunRecord.model_validate_json(data) if data is not None else None

    def write_run_status(self, run_id: str, record: RunStatusRecord) -> None:
        atomic_write_bytes(self.fs, join(self.run_path(run_id), RUN_STATUS), record.model_dump_json(indent=2).encode())

    def read_run_status(self, run_id: str) -> RunStatusRecord | None:
        data = self.read_bytes(join(self.run_path(run_id), RUN_STATUS))
        try:
            return RunStatusRecord.model_validate_json(data) if data is not None else None
        except ValueError:
            return None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_run(store: Store, run_id: str, kind: str, entrypoint: list[str], config: dict[str, Any],
               sample_set_id: str | None = None, job: dict[str, Any] | None = None,
               submitted_at: datetime | None = None) -> None:
    """Write `run.json` for a run made outside the control plane (the demo, experiments). With `job` (the job's
    own config, schemas.jobs) the record is also the file the job reads (`--config <run.json>`)."""
    store.write_run_record(RunRecord(id=run_id, kind=kind, config=config,
                                     config_sha256=run_config_sha256(kind, config),
                                     entrypoint=entrypoint, output_uri=store.run_uri(run_id),
                                     sample_set_id=sample_set_id, job=job,
                                     submitted_at=submitted_at or datetime.now(timezone.utc)))


def record_finished_run(store: Store, run_id: str, kind: str, entrypoint: list[str], config: dict[str, Any],
                        sample_set_id: str | None = None, succeeded: bool = True, message: str = "",
                        started_at: datetime | None = None, finished_at: datetime | None = None,
                        job: dict[str, Any] | None = None) -> None:
    """Write `run.json` + `status.json` for a run made outside the control plane (the demo, experiments),
    so that `catalog rebuild` lists it with its metrics, results and duration like any submitted run."""
    finished = finished_at or datetime.now(timezone.utc)
    started = started_at or finished
    record_run(store, run_id, kind, entrypoint, config, sample_set_id, job, started)
    store.write_run_status(run_id, RunStatusRecord(status="SUCCEEDED" if succeeded else "FAILED", message=message,
                                                   started_at=started, finished_at=finished, updated_at=finished))
