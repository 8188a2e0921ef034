"""A local Ray for the control plane when no address is configured: join the one `ray start --head` runs
here (its job server on 127.0.0.1:8265), or start one of our own as a child process.

Our own Ray is a plain `ray start --head --block` on free loopback ports (never Ray's defaults 6379 and 8265,
which a user's later `ray start --head` takes; restart the server to move its jobs there), in a private temp
dir, with token
auth (Ray 2.60's default) and a token of our own: the same kind of cluster a user starts by hand, so jobs
see a normal `RAY_ADDRESS`, and `stop()` ends exactly the processes it started (never `ray stop`, which
would end every Ray on the machine). Jobs run with the `python` of this interpreter's folder (first on
the cluster's PATH).
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_JOB_SERVER = "http://127.0.0.1:8265"


def job_server_status(address: str, token: str | None = None, timeout_s: float = 2.0) -> int | None:
    """HTTP status of the job server's /api/version with `token` (None: nothing answers at `address`)."""
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return requests.get(f"{address}/api/version", headers=headers, timeout=timeout_s).status_code
    except requests.RequestException:
        return None


def job_server_answers(address: str, token: str | None = None, timeout_s: float = 2.0) -> bool:
    """True if a Ray job server answers at `address` (a 401 counts: it is there, it wants a token)."""
    return job_server_status(address, token, timeout_s) in (200, 401, 403)


def find_local_job_server(token: str | None, address: str = DEFAULT_JOB_SERVER) -> str | None:
    """The job server `ray start --head` runs on this machine, if it accepts `token`; None otherwise.

    One that answers 401/403 belongs to someone else (or wants a token we lack): joining it would make every
    submission fail, and trusting whatever listens on the port is not ours to do, so it is passed over."""
    status = job_server_status(address, token)
    if status == 200:
        return address
    if status is not None:
        log.warning("a Ray job server at %s refuses our credentials (HTTP %s): not joining it (set DAD_RAY_ADDRESS "
                    "and DAD_RAY_AUTH_TOKEN to use it)", address, status)
    return None


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class LocalRay:
    """`ray start --head --block` as a child process; `address` is its job server once `start()` returns."""

    def __init__(self, num_cpus: int | None = None, token: str | None = None, dashboard_port: int | None = None,
                 object_store_bytes: int | None = None, env: dict[str, str] | None = None,
                 state_file: Path | None = None):
        self.state_file = state_file  # where {address, token, temp_dir, pid} is kept, to rejoin after a crash
        self._pid: int | None = None
        self.num_cpus, self.object_store_bytes = num_cpus, object_store_bytes
        self.token = token or secrets.token_hex(16)
        self.dashboard_port = dashboard_port
        self.extra_env = dict(env or {})
        self.temp_dir: str | None = None
        self.address: str | None = None
        self.gcs_address: str | None = None  # what ray.init(address=...) joins (with RAY_AUTH_TOKEN = token)
        self._proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout_s: float = 120.0) -> str:
        if self._rejoin():
            return self.address
        self.temp_dir = tempfile.mkdtemp(prefix="dad-ray-")  # short: Ray's socket paths must fit in 107 bytes
        gcs, client, nm, om, metrics, agent, agent_grpc, env_agent, free_dash = free_ports(9)
        dash = self.dashboard_port or free_dash  # never 8265/6379: a later `ray start --head` needs them
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": self.token, "RAY_USAGE_STATS_ENABLED": "0", **self.extra_env}
        env.pop("RAY_ADDRESS", None)
        cmd = [os.path.join(bin_dir, "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
               f"--port={gcs}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
               f"--ray-client-server-port={client}", f"--node-manager-port={nm}", f"--object-manager-port={om}",
               f"--metrics-export-port={metrics}", f"--dashboard-agent-listen-port={agent}",
               f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={env_agent}",
               f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        if self.num_cpus is not None:
            cmd.append(f"--num-cpus={self.num_cpus}")
        if self.object_store_bytes is not None:
            cmd.append(f"--object-store-memory={self.object_store_bytes}")
        self._log = open(Path(self.temp_dir) / "ray-start.log", "wb")
        self._proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self._pid = self._proc.pid
        address = f"http://127.0.0.1:{dash}"
        deadline = time.monotonic() + timeout_s
        while not job_server_answers(address, self.token):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = (Path(self.temp_dir) / "ray-start.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"`ray start` did not bring up a job server at {address}:\n{tail}")
            time.sleep(0.5)
        self.address, self.gcs_address = address, f"127.0.0.1:{gcs}"
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the token
            with os.fdopen(fd, "w") as f:
                json.dump({"address": address, "token": self.token, "temp_dir": self.temp_dir, "pid": self._pid}, f)
        log.info("started a local Ray (job server %s, temp dir %s); it stops with this server", address, self.temp_dir)
        return address

    def _rejoin(self) -> bool:
        """Take over the Ray a previous server of ours left running (it was killed, not stopped): its jobs go
        on and their statuses stay known, instead of an orphaned cluster beside a second one."""
        try:
            state = json.loads(self.state_file.read_text()) if self.state_file else None
        except (OSError, ValueError):
            state = None
        if not state or not _alive(state["pid"], state["temp_dir"]) \
                or job_server_status(state["address"], state["token"]) != 200:
            return False
        self.address, self.token, self.temp_dir, self._pid = state["address"], state["token"], state["temp_dir"], state["pid"]
        log.warning("rejoined the local Ray a previous run of this server left running (job server %s, temp dir "
                    "%s); its jobs go on", self.address, self.temp_dir)
        return True

    def stop(self, timeout_s: float = 45.0) -> None:
        """Stop the jobs, then Ray: SIGTERM makes `ray start --block` drain and end its processes."""
        if self._pid is None:
            return
        if self.address:
            _stop_jobs(self.address, self.token)
        if _alive(self._pid, self.temp_dir):
            os.kill(self._pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _alive(self._pid, self.temp_dir) and time.monotonic() < deadline:
                if self._proc is not None:
                    self._proc.poll()  # reap our own child
                time.sleep(0.2)
            if _alive(self._pid, self.temp_dir):
                os.killpg(self._pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.poll()
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)
        if self.temp_dir:
            _kill_processes_mentioning(self.temp_dir)  # anything of ours that outlived the drain
        if self._log:
            self._log.close()
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        self._proc, self._pid = None, None


def _alive(pid: int, temp_dir: str | None) -> bool:
    """`pid` runs and is our `ray start` (its command line names our temp dir; a reused pid does not)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat", "rb") as f:
            zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return False
    return not zombie and bool(temp_dir) and temp_dir.encode() in cmdline


def _stop_jobs(address: str, token: str) -> None:
    try:
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(address, headers={"Authorization": f"Bearer {token}"})
        running = [j.submission_id for j in client.list_jobs() if not j.status.is_terminal()]
        for job_id in running:
            client.stop_job(job_id)
        deadline = time.monotonic() + 20
        while running and time.monotonic() < deadline:
            time.sleep(0.5)
            running = [j.submission_id for j in client.list_jobs() if not j.status.is_terminal()]
    except Exception as e:  # noqa: BLE001 - shutting down regardless
        log.warning("could not stop the local Ray's jobs first: %s", e)


def _kill_processes_mentioning(marker: str) -> None:
    """SIGKILL processes whose command line names `marker` (our private temp dir): ours and only ours."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
