"""Fixtures of the deploy tests: the files under deploy/, loaded once, and a multi-process stand-in for a
cluster built from the same parts a real one has, all on 127.0.0.1:

    `ray start --head` (0 CPUs: it schedules nothing)  +  `ray start --address` worker (the CPUs)
    PostgreSQL from Debian's binaries (initdb + pg_ctl, as the `postgres` user when run as root)
    an S3-protocol server (moto's `moto_server`, its own process)
    the control plane (`python -m services.api`, uvicorn)

Every process is started with its own temp dir and free ports and stopped by its own pid or process group
(never `ray stop`, which would end every Ray on the machine). Credentials are made up at test time and
reach the processes through their environment, as a Kubernetes Secret reaches a pod.
"""
from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from process_helpers import pids_mentioning, wait_for

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BUCKET = "dad-deploy"


# -- deploy/ files ---------------------------------------------------------------------------------------------
def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@pytest.fixture(scope="session")
def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every Kubernetes object under deploy/ (kind + apiVersion at top level)."""
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in _documents(path):
            if "apiVersion" in doc and "kind" in doc:
                docs.append((path.name, doc))
    return docs


@pytest.fixture(scope="session")
def compose_file() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="session")
def launcher_file() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "cluster-launcher.aws.yaml").read_text())


# -- processes -------------------------------------------------------------------------------------------------
def _stop_process_group(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM the process group we started (start_new_session=True), SIGKILL it if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def postgres_binaries() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin), newest version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="module")
def postgres_server() -> dict[str, Any]:
    """A throw-away PostgreSQL on 127.0.0.1: {"url": SQLAlchemy URL (with its password), "password", ...}.

    initdb refuses to run as root, so as root the server runs as Debian's `postgres` user, in a temp dir it
    owns; the password is made here and never written anywhere but initdb's (deleted) password file.
    """
    from services.api.local_ray import free_ports

    bindir = postgres_binaries()
    if bindir is None:
        pytest.skip("needs Debian's postgresql package: scripts/install-system-deps.sh installs it")
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        as_user = {"user": pg.pw_uid, "group": pg.pw_gid, "extra_groups": []}
    root = Path(tempfile.mkdtemp(prefix="dad-pg-"))  # /tmp: the postgres user can reach it (pytest's tmp can't)
    password = secrets.token_hex(16)
    pwfile = root / "pwfile"
    pwfile.write_text(password)
    os.chmod(pwfile, 0o600)
    if as_user:
        for p in (root, pwfile):
            os.chown(p, as_user["user"], as_user["group"])
    (port,) = free_ports(1)
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(root / "data")]

    def run(*cmd: str) -> None:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env, **as_user)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({r.returncode}):\n{r.stdout[-1500:]}{r.stderr[-1500:]}")

    try:
        run(str(bindir / "initdb"), "-D", str(root / "data"), "-U", "dad", f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "-E", "UTF8")
        pwfile.unlink()
        run(*pg_ctl, "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off", "start")
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="dad", password=password, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE dad")
        yield {"url": f"postgresql+psycopg://dad:{password}@127.0.0.1:{port}/dad", "host": "127.0.0.1", "port": port,
               "user": "dad", "password": password, "dbname": "dad"}
    finally:
        if (root / "data" / "postmaster.pid").exists():
            subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, cwd=root, env=env, **as_user)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def s3_process() -> dict[str, Any]:
    """moto's S3-protocol server as its own process on 127.0.0.1, with a bucket.

    Yields {"endpoint", "env"}: `env` is what every process of the stand-in cluster gets, as pods get it from
    the dad-s3 Secret and the dad-config ConfigMap: made-up keys and AWS_ENDPOINT_URL_S3.
    """
    from services.api.local_ray import free_ports

    (port,) = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "deploy-" + secrets.token_hex(4), "AWS_SECRET_ACCESS_KEY": secrets.token_hex(16),
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint,
           "AWS_EC2_METADATA_DISABLED": "true"}  # never ask the metadata address for credentials
    log = tempfile.NamedTemporaryFile(prefix="dad-moto-", suffix=".log", delete=False)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import requests

        wait_for(lambda: requests.get(endpoint, timeout=2).status_code < 500, 30, "moto_server did not start")
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=BUCKET)
        yield {"endpoint": endpoint, "env": env, "bucket": BUCKET}
    finally:
        _stop_process_group(proc, 10)
        log.close()
        os.unlink(log.name)


@pytest.fixture(scope="module")
def s3fs_client(s3_process):
    import s3fs

    env = s3_process["env"]
    return s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                             endpoint_url=s3_process["endpoint"], skip_instance_cache=True)


@pytest.fixture(scope="module")
def ray_nodes(s3_process) -> dict[str, Any]:
    """A two-node Ray: `ray start --head --num-cpus=0` and one `ray start --address=<gcs>` worker with 2 CPUs.

    Both run with token auth (the token is made here), the S3 environment, and this interpreter's folder
    first on PATH (the `python` of jobs). Yields {"address": job server URL, "token", "gcs", "jobs": client}.
    """
    from ray.job_submission import JobSubmissionClient

    from services.api.local_ray import LocalRay, free_ports, job_server_answers

    node_env = {**s3_process["env"], "HF_HUB_OFFLINE": "1"}
    head = LocalRay(num_cpus=0, dashboard_port=free_ports(1)[0], object_store_bytes=150 * 1024 * 1024, env=node_env)
    worker: subprocess.Popen | None = None
    worker_log = None
    worker_dir = tempfile.mkdtemp(prefix="dad-rw-")  # short: Ray's socket paths must fit in 107 bytes
    try:
        address = head.start()
        gcs = wait_for(lambda: (Path(head.temp_dir) / "ray_current_cluster").read_text().strip(), 30,
                       "the head did not write its GCS address")
        bin_dir = str(Path(sys.executable).parent)
        nm, om, metrics, agent, agent_grpc, env_agent = free_ports(6)
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": head.token, "RAY_USAGE_STATS_ENABLED": "0", **node_env}
        env.pop("RAY_ADDRESS", None)
        cmd = [os.path.join(bin_dir, "ray"), "start", f"--address={gcs}", "--block", "--node-ip-address=127.0.0.1",
               "--num-cpus=2", f"--object-store-memory={150 * 1024 * 1024}", f"--node-manager-port={nm}",
               f"--object-manager-port={om}", f"--metrics-export-port={metrics}",
               f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
               f"--runtime-env-agent-port={env_agent}", f"--temp-dir={worker_dir}", "--disable-usage-stats"]
        worker_log = open(Path(worker_dir) / "ray-start.log", "wb")
        worker = subprocess.Popen(cmd, env=env, stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
        jobs = JobSubmissionClient(address, headers={"Authorization": f"Bearer {head.token}"})
        assert job_server_answers(address, head.token)

        def two_nodes_alive():
            if worker.poll() is not None:
                raise RuntimeError((Path(worker_dir) / "ray-start.log").read_text(errors="replace")[-2000:])
            return _alive_nodes(address, head.token) == 2

        wait_for(two_nodes_alive, 90, "the worker node did not join the head")
        yield {"address": address, "token": head.token, "gcs": gcs, "jobs": jobs, "head_dir": head.temp_dir,
               "worker_dir": worker_dir}
    finally:
        if worker is not None:  # the worker first, while its head still answers: a clean, quick drain
            _stop_process_group(worker, 15)
        head_dir = head.temp_dir
        head.stop(timeout_s=10)  # the head's jobs, then its processes (SIGKILL after 10 s of draining)
        for pid in pids_mentioning(worker_dir):  # anything of the worker's that outlived the drain
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if worker_log is not None:
            worker_log.close()
        shutil.rmtree(worker_dir, ignore_errors=True)
        assert not pids_mentioning(worker_dir) and not (head_dir and pids_mentioning(head_dir))


def _alive_nodes(address: str, token: str) -> int:
    import requests

    r = requests.get(f"{address}/nodes?view=summary", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    r.raise_for_status()
    summary = r.json()["data"]["summary"]
    return sum(1 for n in summary if n.get("raylet", {}).get("state") == "ALIVE")


@pytest.fixture(scope="module")
def api_process(ray_nodes, s3_process, postgres_server, tmp_path_factory) -> dict[str, Any]:
    """`python -m services.api` against the two-node Ray, the S3 store and PostgreSQL, configured the way
    deploy/dad-api.yaml configures it: everything through DAD_* / AWS_* environment variables."""
    from services.api.local_ray import free_ports

    import httpx

    (port,) = free_ports(1)
    token = "deploy-api-" + secrets.token_hex(8)
    store = f"s3://{s3_process['bucket']}/store"
    env = {**os.environ, **s3_process["env"], "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "DAD_AUTH_TOKEN": token, "DAD_RAY_AUTH_TOKEN": ray_nodes["token"], "DAD_RAY_ADDRESS": ray_nodes["address"],
           "DAD_STORE_URI": store, "DAD_DATABASE_URL": postgres_server["url"], "DAD_SYNC_INTERVAL_S": "1",
           "DAD_ALLOWED_SOURCES": json.dumps([f"s3://{s3_process['bucket']}/data"]),  # cf. dad-config.yaml
           # Jobs run in Ray's working dir: make the repository importable however it was installed.
           "DAD_JOB_ENV": json.dumps({"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})}
    log_path = tmp_path_factory.mktemp("api") / "server.log"  # kept for a failed test's reader
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "services.api", "--port", str(port), "--log-level", "info"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            if proc.poll() is not None:
                raise RuntimeError(log_path.read_text(errors="replace")[-3000:])
            return httpx.get(f"{url}/health", timeout=5).status_code == 200

        wait_for(up, 60, "the API server did not start")
        yield {"url": url, "token": token, "store": store, "log": log_path,
               "headers": {"Authorization": f"Bearer {token}"}}
    finally:
        _stop_process_group(proc, 20)
        log.close()
