"""The control-plane fault: SIGKILL of a real uvicorn API server (SQLite catalog, local store, real local Ray)
with runs in flight and mid-ingest; after each restart the statuses are right and the catalog equals a rebuild."""
from __future__ import annotations

import json


def test_killing_the_api_leaves_no_run_stuck_and_the_catalog_equal_to_the_store(tmp_path):
    from services.chaos.control_plane import EXPECTED_AFTER_RESTART, api_kill_phase

    (tmp_path / "logs").mkdir()
    phase, records = api_kill_phase(tmp_path, tmp_path / "logs")
    print(json.dumps(phase, indent=1, default=str))
    assert phase["runs"]["after_restart"] == EXPECTED_AFTER_RESTART, phase["runs"]  # nothing stuck RUNNING
    assert phase["runs"]["right"], phase["runs"]                                    # and status.json written
    ingest = phase["ingest"]
    assert 0 < ingest["rows_at_kill"] < ingest["rows"]  # the kill did land mid-ingest
    assert ingest["complete_once"], ingest
    assert phase["rebuild"]["exit"] == 0 and phase["rebuild"]["matches"], phase["rebuild"]
    assert phase["rebuild"]["statuses"] == {"api-ok": "SUCCEEDED", "api-fail": "FAILED", "api-long": "STOPPED"}
    assert len(records) == 2 and all(r.recovered for r in records), records
    assert phase["passed"]
