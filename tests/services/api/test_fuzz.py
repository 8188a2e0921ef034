"""Schemathesis against a live `python -m services.api` (uvicorn on 127.0.0.1): every operation, generated
valid and invalid requests, every check (server errors, schema conformance, status codes, headers, 405s).

Kept small in `make test` (DAD_FUZZ_MAX_EXAMPLES, default 5 per operation and phase); `make fuzz-api` runs
a bigger one. The server is the real app under uvicorn with an in-memory launcher instead of Ray
(fuzz/server.py), so submissions succeed and the stateful phase follows them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from process_helpers import stop, wait_for

REPO = Path(__file__).resolve().parents[3]
FUZZ = Path(__file__).resolve().parent / "fuzz"
TOKEN = "fuzz-token-0123456789abcdef"


@pytest.fixture
def live_api(tmp_path, sample_set_writer):
    from services.api.local_ray import free_ports

    store = tmp_path / "store"
    sample_set_writer(store, "synthetic")
    (port,) = free_ports(1)
    env = {**os.environ, "DAD_AUTH_TOKEN": TOKEN, "DAD_AUTH_READS": "true", "DAD_SYNC_INTERVAL_S": "1", "PYTHONPATH": str(REPO),
           "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, str(FUZZ / "server.py"), "--store", str(store), "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 60, "the API server did not start")
        wait_for(lambda: httpx.get(f"{url}/sample-sets", headers={"Authorization": f"Bearer {TOKEN}"}).json()["count"]
                 == 1, 30, "the set was not indexed")
        # The first submission imports torch (dad_core presets): pay it here, not in a fuzzed request's timeout.
        warm = httpx.post(f"{url}/runs", json={"id": "warm-up", "kind": "generate", "config": {"source": "/data/x"}},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300)
        assert warm.status_code == 201, warm.text
        yield {"url": url, "log": tmp_path / "server.log", "dir": tmp_path}
    finally:
        stop(proc)
        log.close()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(live_api):
    examples = os.environ.get("DAD_FUZZ_MAX_EXAMPLES", "5")
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    cmd = [cli, "--config-file", str(FUZZ / "schemathesis.toml"), "run", f"{live_api['url']}/openapi.json", "--checks", "all", "--max-examples", examples,
           "--header", f"Authorization: Bearer {TOKEN}", "--seed", os.environ.get("DAD_FUZZ_SEED", "16"),
           "--workers", "1", "--request-timeout", "60", "--no-color", "--generation-database", "none",
           "--report", "junit", "--report-dir", str(live_api["dir"] / "report")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=float(os.environ.get("DAD_FUZZ_TIMEOUT_S", 300)),
                            cwd=live_api["dir"])
    print(result.stdout[-6000:])
    server_log = live_api["log"].read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[-4000:]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
