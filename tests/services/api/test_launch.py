"""One way to start a job (services.api.launch): the run record is written before the job starts (the job
reads its config from it), the record's hash is the API's, and the local-process launcher reports how the
job ended."""
from __future__ import annotations

import json
import shlex
import sys

import pytest

from schemas.api import JOB_KINDS, EvalRunConfig, run_config_sha256
from services.api.entrypoints import JobSpec, build_job
from services.api.launch import record_final_state, start_job
from services.api.launcher import JobConflict, LocalProcessLauncher
from services.api.store import Store


def _job(store: Store, run_id: str, code: str) -> JobSpec:
    """An eval job whose command is replaced by `python -c code` (argv[1] = the run record's path)."""
    spec = build_job("eval", run_id, EvalRunConfig(model="/models/m", suites=["imagenet-val"]), store, sys.executable)
    record = f"{store.run_path(run_id)}/run.json"  # a local store: a plain path
    return JobSpec([sys.executable, "-c", code, record], spec.output_uri, spec.job)


def test_the_record_exists_when_the_job_starts_and_the_final_state_is_written(tmp_path):
    store = Store(str(tmp_path / "store"))
    config = EvalRunConfig(model="/models/m", suites=["imagenet-val"])
    code = "import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if r['job']['model'] == '/models/m' else 3)"
    launcher = LocalProcessLauncher()
    record = start_job(store, launcher, "eval", "r1", config, sys.executable, job=_job(store, "r1", code))
    assert record.config_sha256 == run_config_sha256("eval", config.model_dump(mode="json"))
    assert json.loads((tmp_path / "store/runs/r1/run.json").read_text())["kind"] == "eval"
    status = record_final_state(store, launcher, "r1")
    assert status.status == "SUCCEEDED" and status.finished_at >= status.started_at
    assert store.read_run_status("r1").status == "SUCCEEDED"


def test_a_failing_job_is_recorded_failed_and_a_different_config_under_the_same_id_is_refused(tmp_path):
    store = Store(str(tmp_path / "store"))
    launcher = LocalProcessLauncher()
    config = EvalRunConfig(model="/models/m", suites=["imagenet-val"])
    start_job(store, launcher, "eval", "r2", config, sys.executable, job=_job(store, "r2", "raise SystemExit(4)"))
    status = record_final_state(store, launcher, "r2")
    assert status.status == "FAILED" and "4" in status.message
    other = EvalRunConfig(model="/models/other", suites=["imagenet-val"])
    with pytest.raises(JobConflict):
        start_job(store, launcher, "eval", "r2", other, sys.executable, job=_job(store, "r2", "pass"))
    assert not (tmp_path / "store/runs/r2").exists()  # a refused start leaves no record behind


def test_every_job_kind_has_a_builder_and_a_module_that_exists():
    import importlib.util

    for kind, job in JOB_KINDS.items():
        assert importlib.util.find_spec(job.module) is not None, kind
    assert shlex.split(build_job("eval", "r3", EvalRunConfig(model="/m", suites=["imagenet-val"]), Store("/tmp/s"),
                                 "python").entrypoint)[2] == JOB_KINDS["eval"].module
