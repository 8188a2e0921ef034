"""The control-plane fault (`api_kill`): SIGKILL the API server while runs are in flight, and again while a
sample set is being indexed; restart it on the same store and database each time, and check what a user sees.

    real local Ray (`ray start --head`)  <-  `python -m services.api` (uvicorn, SQLite catalog, local store)

1. submit three tiny generate runs over REST: one that finishes, one that fails (its source does not exist),
   one still running; SIGKILL the API once the long one runs, and let the other two end while it is down;
2. restart: every run's status must be right (never RUNNING for a job that ended), status.json written;
3. publish a 20 k-item set (40 k rows, indexed in chunks); SIGKILL the API mid-ingest; restart: the set must
   be indexed completely, once (every row, no duplicate);
4. stop the long run over REST; the catalog must equal `catalog rebuild` of the store (runs and sets).
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from services.chaos.faults import FaultRecord
from services.chaos.jobs import REPO
from services.polling import wait_for
from services.chaos.source import make_source
TOKEN = "chaos-api-token-0123456789abcdef"
INGEST_SET = "scale"            # benchmarks.scale.fabricate's set id
_RUN_COLUMNS = "id, kind, status, config_sha256, sample_set_id, started_at, finished_at"
_SET_COLUMNS = "id, manifest_sha256, num_rows, ready, shards"


class ApiServer:
    """`python -m services.api` as a user runs it, on a fixed port, store and database, restartable."""

    def __init__(self, store: Path, ray_address: str, ray_token: str, log_dir: Path):
        from services.api.local_ray import free_ports

        self.store, self.log_dir = store, log_dir
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = store / "catalog.db"
        self.env = {**os.environ, "DAD_AUTH_TOKEN": TOKEN, "DAD_RAY_AUTH_TOKEN": ray_token,
                    "DAD_JOB_PYTHON": sys.executable, "DAD_SYNC_INTERVAL_S": "0.5", "HF_HUB_OFFLINE": "1",
                    "DAD_JOB_ENV": json.dumps({"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}),
                    "PYTHONPATH": str(REPO)}
        self.argv = [sys.executable, "-m", "services.api", "--port", str(self.port), "--store", str(store),
                     "--ray-address", ray_address, "--log-level", "warning"]
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout_s: float = 60) -> float:
        """Start and wait for /health; returns the seconds that took."""
        import httpx

        t0 = time.monotonic()
        self.starts += 1
        log = open(self.log_dir / f"api-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(lambda: httpx.get(f"{self.url}/health", timeout=2).status_code == 200, timeout_s,
              "the API server did not start")
        return time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost node would: no shutdown hook runs."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def post(self, path: str, body: dict | None = None):
        import httpx

        return httpx.post(f"{self.url}{path}", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def runs(self) -> dict[str, dict]:
        import httpx

        return {r["id"]: r for r in httpx.get(f"{self.url}/runs", params={"limit": 100}, timeout=30).json()["data"]}


def _query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
        return c.execute(sql, args).fetchall()


def catalog_tables(db: Path) -> dict[str, list]:
    """What must agree between the live catalog and a rebuilt one: runs, sets, and each set's rows."""
    return {"runs": _query(db, f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id"),
            "sample_sets": _query(db, f"SELECT {_SET_COLUMNS} FROM sample_sets ORDER BY id"),
            "samples": _query(db, "SELECT set_id, count(*), count(DISTINCT sample_id) FROM samples GROUP BY set_id "
                                  "ORDER BY set_id")}


def _runs_config(source: Path, missing: Path) -> list[dict]:
    base = {"preset": "tiny", "cpus_per_actor": 0.5}
    return [
        {"id": "api-ok", "kind": "generate", "config": {**base, "source": str(source), "limit": 10, "shard_size": 5,
                                                        "batch_size": 5, "overrides": {"attack.steps": 1}}},
        {"id": "api-fail", "kind": "generate", "config": {**base, "source": str(missing)}},
        {"id": "api-long", "kind": "generate", "config": {**base, "source": str(source), "shard_size": 5,
                                                          "batch_size": 5, "overrides": {"attack.steps": 2000}}},
    ]


EXPECTED_AFTER_RESTART = {"api-ok": "SUCCEEDED", "api-fail": "FAILED", "api-long": "RUNNING"}


def api_kill_phase(out: Path, logs: Path, ingest_items: int = 20_000) -> tuple[dict, list[FaultRecord]]:
    """Runs steps 1-4 of the module doc; returns (phase summary, one record per kill)."""
    from ray.job_submission import JobSubmissionClient

    from benchmarks.scale import fabricate
    from services.api.local_ray import LocalRay, free_ports

    out.mkdir(parents=True, exist_ok=True)
    store = out / "api-store"
    source = make_source(out / "api-source", 20, seed=0)
    phase: dict[str, Any] = {}
    records: list[FaultRecord] = []
    ray = LocalRay(num_cpus=2, dashboard_port=free_ports(1)[0], object_store_bytes=300 * 1024 * 1024,
                   env={"HF_HUB_OFFLINE": "1"})
    api = None
    t_phase = time.monotonic()
    timings: dict[str, float] = {}
    phase["timings_s"] = timings

    def mark(step: str) -> None:
        timings[step] = round(time.monotonic() - t_phase - sum(timings.values()), 2)
    try:
        address = ray.start()
        mark("ray_start")
        jobs = JobSubmissionClient(address, headers={"Authorization": f"Bearer {ray.token}"})
        api = ApiServer(store, address, ray.token, logs)
        phase["api_start_s"] = round(api.start(), 2)

        # 1. runs in flight, then SIGKILL
        for body in _runs_config(source, out / "no-such-folder"):
            r = api.post("/runs", body)
            if r.status_code != 201:
                raise RuntimeError(f"POST /runs {body['id']}: {r.status_code} {r.text}")
        wait_for(lambda: api.runs()["api-long"]["status"] == "RUNNING", 120, "api-long never ran")
        mark("submit_until_running")
        seen = {k: v["status"] for k, v in api.runs().items()}
        rec = FaultRecord("control-plane", "api_kill", round(time.monotonic() - t_phase, 2),
                          f"SIGKILL of the API with runs in flight (catalog then: {seen})")
        records.append(rec)
        api.kill()
        # The set to index mid-kill is written meanwhile (the jobs mostly wait on Ray), published later.
        staged = out / "ingest-staging"
        staging = threading.Thread(target=fabricate, args=(staged, ingest_items, 10), kwargs={"shard_items": 1000})
        staging.start()
        ray_says = lambda i: jobs.get_job_status(i).value  # noqa: E731
        wait_for(lambda: ray_says("api-ok") in ("SUCCEEDED", "FAILED") and ray_says("api-fail") in ("SUCCEEDED", "FAILED"),
              180, "the short runs did not end while the API was down", 0.5)
        truth = {i: ray_says(i) for i in EXPECTED_AFTER_RESTART}
        mark("short_runs_end_while_down")

        # 2. restart: statuses right
        t0 = time.monotonic()
        api.start()
        try:
            wait_for(lambda: {k: v["status"] for k, v in api.runs().items()} == truth, 30, "statuses after restart")
            rec.recovered = True
        except TimeoutError:
            pass
        rec.recover_s = rec.time_lost_s = round(time.monotonic() - t0, 2)
        after = {k: v["status"] for k, v in api.runs().items()}
        on_disk = {i: json.loads(p.read_text())["status"] if (p := store / "runs" / i / "status.json").exists()
                   else None for i in EXPECTED_AFTER_RESTART}
        phase["runs"] = {"before_kill": seen, "ray": truth, "after_restart": after, "status_json": on_disk,
                         "right": after == truth == EXPECTED_AFTER_RESTART
                                  and on_disk == {"api-ok": "SUCCEEDED", "api-fail": "FAILED", "api-long": None}}

        # 3. SIGKILL mid-ingest
        mark("restart_and_check")
        staging.join()
        (store / "sample-sets").mkdir(exist_ok=True)
        os.rename(staged / "sample-sets" / INGEST_SET, store / "sample-sets" / INGEST_SET)  # published at once
        mark("wait_for_ingest_set")
        rows_at_kill = wait_for(lambda: (lambda r: r and r[0][0] == 0 and r[0][1] > 0 and r[0][1])(_query(
            api.database, "SELECT s.ready, (SELECT count(*) FROM samples WHERE set_id = s.id) FROM sample_sets s "
                          "WHERE s.id = ?", (INGEST_SET,))), 60, "the ingest was never seen under way", 0.05)
        rec2 = FaultRecord("control-plane", "api_kill", round(time.monotonic() - t_phase, 2),
                           f"SIGKILL of the API mid-ingest ({rows_at_kill} rows of the set in)")
        records.append(rec2)
        api.kill()
        t0 = time.monotonic()
        api.start()
        expected_rows = 2 * ingest_items
        ready = lambda: _query(api.database, "SELECT ready, num_rows FROM sample_sets WHERE id = ?",  # noqa: E731
                               (INGEST_SET,)) == [(1, expected_rows)]
        try:
            wait_for(ready, 60, "the set was not indexed after the restart")
            rec2.recovered = True
        except TimeoutError:
            pass
        rec2.recover_s = rec2.time_lost_s = round(time.monotonic() - t0, 2)
        mark("ingest_kill_restart")
        (n, distinct), = _query(api.database, "SELECT count(*), count(DISTINCT sample_id) FROM samples WHERE set_id = ?",
                                (INGEST_SET,))
        phase["ingest"] = {"rows": expected_rows, "rows_at_kill": rows_at_kill, "rows_after": n,
                           "distinct_after": distinct, "complete_once": n == distinct == expected_rows}

        # 4. the catalog equals a rebuild of the store
        stopped = api.post("/runs/api-long/stop").json().get("status")
        wait_for(lambda: api.runs()["api-long"]["status"] == "STOPPED", 60, "api-long did not stop")
        live = catalog_tables(api.database)
        api.stop()
        rebuilt_db = out / "rebuilt.db"
        done = subprocess.run([sys.executable, "-m", "services.api.catalog", "rebuild", "--store", str(store),
                               "--database", f"sqlite:///{rebuilt_db}"], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        rebuilt = catalog_tables(rebuilt_db) if done.returncode == 0 else {}
        phase["rebuild"] = {"exit": done.returncode, "output": (done.stdout + done.stderr).strip()[-500:],
                            "long_run_stopped": stopped, "matches": live == rebuilt,
                            "statuses": {row[0]: row[2] for row in live["runs"]},
                            "differences": {k: {"live": live[k], "rebuilt": rebuilt.get(k)} for k in live
                                            if live[k] != rebuilt.get(k)}}
        mark("stop_and_rebuild")
        phase["passed"] = bool(phase["runs"]["right"] and phase["ingest"]["complete_once"]
                               and phase["rebuild"]["matches"] and all(r.recovered for r in records))
    finally:
        if api is not None:
            api.stop()
        ray.stop()
    phase["wall_s"] = round(time.monotonic() - t_phase, 2)
    return phase, records
