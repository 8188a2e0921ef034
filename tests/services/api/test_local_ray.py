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
