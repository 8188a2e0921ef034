"""With no Ray address configured (and no `ray start` job server on 127.0.0.1:8265) the server starts a
private Ray of its own, runs jobs on it with its own interpreter, and stops exactly that Ray at shutdown."""
from __future__ import annotations

import sys
from pathlib import Path
from process_helpers import pids_mentioning, wait_for

REPO = Path(__file__).resolve().parents[3]
API_TOKEN = "local-ray-api-token-0123456789"


def test_without_an_address_the_server_starts_its_own_ray_and_reports_a_failed_job(tmp_path, monkeypatch):
    """Default settings: no Ray address, nothing on 127.0.0.1:8265 -> a private `ray start`, stopped with the app."""
    import services.api.app as app_module
    from fastapi.testclient import TestClient

    from services.api.local_ray import free_ports
    from services.api.settings import Settings

    monkeypatch.setattr(app_module, "DEFAULT_JOB_SERVER", f"http://127.0.0.1:{free_ports(1)[0]}")  # nothing there
    settings = Settings(store_uri=str(tmp_path / "store"), auth_token=API_TOKEN, sync_interval_s=0,
                        job_env={"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with TestClient(app_module.create_app(settings)) as client:
        local = client.app.state.local_ray
        assert local is not None and client.app.state.job_python == sys.executable
        assert not local.address.endswith((":8265", ":6379"))  # Ray's default ports stay free for `ray start --head`
        body = {"id": "bad-source", "kind": "generate", "config": {"source": str(tmp_path / "missing"), "preset": "tiny"}}
        assert client.post("/runs", json=body, headers=headers).status_code == 201
        run = wait_for(lambda: (lambda r: r if r["status"] in ("SUCCEEDED", "FAILED") else None)(
            client.get("/runs/bad-source").json()), 120, "the job did not end")
        assert run["status"] == "FAILED"
        assert "error:" in run["log_tail"] and "missing" in run["log_tail"]
        temp_dir = local.temp_dir
    assert not pids_mentioning(temp_dir)


def test_a_local_job_server_is_joined_only_if_it_accepts_our_token():
    """One that answers 401 (someone else's Ray, or one wanting a token we lack) is passed over."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from services.api.local_ray import find_local_job_server

    class TokenServer(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            ok = self.headers.get("Authorization") == "Bearer right-token"
            self.send_response(200 if ok else 401)
            self.end_headers()
            self.wfile.write(b'{"version": "x"}' if ok else b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert find_local_job_server("right-token", address) == address
        assert find_local_job_server("wrong-token", address) is None
        assert find_local_job_server(None, address) is None
    finally:
        server.shutdown()
    assert find_local_job_server("right-token", address) is None  # nothing answers any more


def test_a_server_killed_and_restarted_rejoins_its_own_ray_and_its_running_jobs(tmp_path):
    """Measured before: SIGKILL of the server left its private Ray running, orphaned (no one would ever stop
    it), and the restarted server started a second one; the run in flight became UNKNOWN while its job went on
    in the first. Now the restarted server rejoins its Ray: the run is still RUNNING, and a clean stop ends it."""
    import hashlib
    import json
    import os
    import re
    import signal
    import subprocess

    import httpx

    from services.api.local_ray import free_ports

    store, cache = tmp_path / "store", tmp_path / "cache"
    source = tmp_path / "source"
    from services.chaos.source import make_source

    make_source(source, 10, seed=0)
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DAD_AUTH_TOKEN": API_TOKEN, "DAD_CACHE_DIR": str(cache), "DAD_SYNC_INTERVAL_S": "0.5",
           "DAD_JOB_ENV": json.dumps({"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}), "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "services.api", "--port", str(port), "--store", str(store), "--log-level", "info"]
    state_file = cache / "local-ray" / f"{hashlib.sha256(str(store).encode()).hexdigest()[:16]}.json"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    body = {"id": "long", "kind": "generate", "config": {"source": str(source), "preset": "tiny", "batch_size": 5,
                                                          "cpus_per_actor": 0.5, "overrides": {"attack.steps": 5000}}}
    procs = []

    def start():
        procs.append(subprocess.Popen(argv, env=env, cwd=REPO, stdout=open(tmp_path / f"api-{len(procs)}.log", "wb"),
                                      stderr=subprocess.STDOUT))
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 120, "the API server did not start")

    try:
        start()
        found = re.search(r"started a local Ray \(job server \S+, temp dir (\S+)\)", (tmp_path / "api-0.log").read_text())
        assert found, "the server joined a Ray on 127.0.0.1:8265 instead of starting its own"
        temp_dir = found.group(1)
        assert httpx.post(f"{url}/runs", json=body, headers=headers, timeout=30).status_code == 201
        wait_for(lambda: httpx.get(f"{url}/runs/long", timeout=30).json()["status"] == "RUNNING", 120, "never ran")
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait()
        assert pids_mentioning(temp_dir)  # its Ray outlived it, as it must: the job goes on

        start()
        run = httpx.get(f"{url}/runs/long", timeout=30).json()
        assert run["status"] == "RUNNING", run
        assert "started a local Ray" not in (tmp_path / "api-1.log").read_text()  # the same Ray, not a second one
        assert oct(state_file.stat().st_mode & 0o777) == "0o600"  # it holds the Ray token
        procs[-1].terminate()  # a clean stop ends the Ray, rejoined or not
        procs[-1].wait(timeout=90)
        wait_for(lambda: not pids_mentioning(temp_dir), 30, "the rejoined Ray outlived a clean stop")
        assert not state_file.exists()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for log in tmp_path.glob("api-*.log"):  # every Ray a server of this test started (a second one: the bug)
            for ours in re.findall(r"temp dir (\S+)\)", log.read_text()):
                for pid in pids_mentioning(ours):  # ours only: the private temp dir names them
                    os.kill(pid, signal.SIGKILL)
