"""Bad deployment input fails at start-up, with a message that names the setting to fix (issue #8):
missing credentials, an unreachable object store or database. Each case runs the real command line, as a
pod or a compose service would, with a made-up environment and closed ports on 127.0.0.1.
deploy/README.md ("Start-up checks") lists what each case prints.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLOSED = "http://127.0.0.1:9"  # discard port: nothing listens there, connections are refused at once
TOKEN = "startup-test-token-0123456789"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAD_", "RAY_"))}
    # No credential lookups beyond the environment: never the EC2 metadata address, never ~/.aws.
    env.update({"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)})
    env.update(extra)
    return env


S3_KEYS = {"AWS_ACCESS_KEY_ID": "startup-test-key", "AWS_SECRET_ACCESS_KEY": "startup-test-secret-0123456789",
           "AWS_DEFAULT_REGION": "us-east-1"}


def _run(args: list[str], env: dict[str, str], tmp_path: Path, timeout_s: float) -> tuple[int | None, str]:
    """(exit status, or None if still running after timeout_s; stdout+stderr)."""
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    return rc, log.read_text(errors="replace")


def _api(tmp_path, timeout_s: float = 12.0, **env) -> tuple[int | None, str]:
    return _run(["services.api", "--port", "1", "--ray-address", CLOSED], _env(**env), tmp_path, timeout_s)


# -- control plane ---------------------------------------------------------------------------------------------
def test_api_without_an_auth_token_stops_naming_DAD_AUTH_TOKEN(tmp_path):
    rc, out = _api(tmp_path, DAD_STORE_URI=str(tmp_path / "store"))
    assert rc == 2 and "DAD_AUTH_TOKEN" in out


def test_api_with_an_unreachable_database_stops_naming_DAD_DATABASE_URL(tmp_path):
    password = "pg-password-never-printed"
    started = time.monotonic()
    rc, out = _api(tmp_path, DAD_AUTH_TOKEN=TOKEN, DAD_STORE_URI=str(tmp_path / "store"),
                   DAD_DATABASE_URL=f"postgresql+psycopg://dad:{password}@127.0.0.1:9/dad")
    assert password not in out
    assert rc == 2 and "DAD_DATABASE_URL" in out and "Traceback" not in out, out[-2000:]
    assert time.monotonic() - started < 12


def test_api_with_an_unreachable_object_store_stops_naming_the_endpoint_setting(tmp_path):
    rc, out = _api(tmp_path, DAD_AUTH_TOKEN=TOKEN, DAD_STORE_URI="s3://dad/store", AWS_ENDPOINT_URL_S3=CLOSED,
                   DAD_DATABASE_URL=f"sqlite:///{tmp_path}/catalog.db", **S3_KEYS)
    assert rc == 2, "the API kept running against an object store it cannot reach"
    assert "DAD_STORE_URI" in out and ("AWS_ENDPOINT_URL_S3" in out or "endpoint_url" in out), out[-2000:]


def test_api_without_s3_credentials_stops_naming_them(tmp_path):
    rc, out = _api(tmp_path, DAD_AUTH_TOKEN=TOKEN, DAD_STORE_URI="s3://dad/store", AWS_ENDPOINT_URL_S3=CLOSED,
                   DAD_DATABASE_URL=f"sqlite:///{tmp_path}/catalog.db")
    assert rc == 2, "the API kept running without credentials for its object store"
    assert "AWS_ACCESS_KEY_ID" in out, out[-2000:]


# -- jobs --------------------------------------------------------------------------------------------------------
def _job_args(job: str, tmp_path: Path) -> list[str]:
    source = tmp_path / "images"
    for cls in ("a", "b"):
        (source / cls).mkdir(parents=True, exist_ok=True)
    return {"generator": ["services.generator", "--source", str(source), "--out", "s3://dad/store/sample-sets",
                          "--no-progress"],
            "trainer": ["services.trainer", "--source", "s3://dad/data/train", "--out", "s3://dad/store/runs/t1",
                        "--preset", "tiny", "--objective", "ce", "--no-progress"],
            "evaluator": ["services.evaluator", "--model", "s3://dad/store/runs/t1",
                          "--suites", "imagefolder:s3://dad/data/test", "--out", "s3://dad/store/runs/e1"]}[job]


def test_a_job_whose_object_store_is_unreachable_stops_at_start_naming_its_output(tmp_path):
    """What the generator does today: exits before any work with the URL it cannot write."""
    rc, out = _run(_job_args("generator", tmp_path), _env(AWS_ENDPOINT_URL_S3=CLOSED, **S3_KEYS), tmp_path, 120)
    assert rc not in (0, None) and "s3://dad/store/sample-sets" in out and "not writable" in out


def test_a_job_whose_object_store_is_unreachable_names_the_endpoint_setting(tmp_path):
    rc, out = _run(_job_args("generator", tmp_path), _env(AWS_ENDPOINT_URL_S3=CLOSED, **S3_KEYS), tmp_path, 120)
    assert rc == 2 and ("AWS_ENDPOINT_URL_S3" in out or "--storage-option endpoint_url" in out), out[-2000:]


@pytest.mark.parametrize("job", ["generator", "trainer", "evaluator"])
def test_a_job_without_s3_credentials_stops_at_start_naming_them(job, tmp_path):
    rc, out = _run(_job_args(job, tmp_path), _env(AWS_ENDPOINT_URL_S3=CLOSED), tmp_path, 120)
    assert rc == 2, f"exit {rc} (2 = bad input: a RayJob must not retry it)\n{out[-2000:]}"
    assert "AWS_ACCESS_KEY_ID" in out and "Traceback" not in out, out[-2000:]
