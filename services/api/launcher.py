"""Job launchers behind four calls (submit, state, logs, stop): Ray's Job Submission API for the control plane,
and a local child process for the demo, experiments and tests.

`submit` is idempotent by run id (Ray's `submission_id`): a retry of a submission Ray already holds is a
no-op, checked against the config hash stored in the job's metadata. Every way of not reaching the job
server (refused, timed out, DNS, 5xx from a dying head) becomes `RayUnavailable`, which the API turns into
503 before it writes anything to the catalog.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

log = logging.getLogger(__name__)

META_KIND = "dad_run_kind"
META_CONFIG = "dad_config_sha256"


class RayUnavailable(RuntimeError):
    """The Ray job server cannot be reached (or refuses our credentials); the message says which and where."""


class JobConflict(RuntimeError):
    """Ray already holds a job with this submission id, made from a different config."""


@dataclass(frozen=True)
class JobState:
    status: str                      # Ray's JobStatus value: PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, str] | None = None


class Launcher(Protocol):
    def submit(self, run_id: str, entrypoint: str, metadata: dict[str, str], runtime_env: dict[str, Any]) -> None: ...
    def state(self, run_id: str) -> JobState | None: ...
    def logs(self, run_id: str) -> str: ...
    def stop(self, run_id: str) -> bool: ...


def _ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, timezone.utc) if value else None


def default_ray_token() -> str | None:
    """Ray's own token lookup order (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token), or None."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), os.path.expanduser("~/.ray/auth_token")):
        if path and os.path.isfile(path):
            with open(path) as f:
                token = f.read().strip()
            if token:
                return token
    return None


class RayJobLauncher:
    """Ray Job Submission client for one cluster (e.g. http://127.0.0.1:8265)."""

    def __init__(self, address: str, auth_token: str | None = None, timeout_s: float = 10.0):
        self.address = address if "://" in address else f"http://{address}"
        token = auth_token or default_ray_token()
        # Sending the token to a cluster without token auth is harmless; omitting it to one with it is a 401.
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout_s = timeout_s
        self._client = None

    def _connect(self):
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            timeout = self.timeout_s

            class _Client(JobSubmissionClient):
                def _do_request(self, method, endpoint, **kwargs):  # Ray's client never times out by itself
                    kwargs.setdefault("timeout", timeout)
                    return super()._do_request(method, endpoint, **kwargs)

            self._client = self._call(lambda: _Client(self.address, headers=dict(self.headers)))
        return self._client

    def _call(self, fn):
        import requests
        from ray.exceptions import AuthenticationError

        try:
            return fn()
        except AuthenticationError as e:
            raise RayUnavailable(f"the Ray job server at {self.address} refused our credentials (set "
                                 f"DAD_RAY_AUTH_TOKEN to the cluster's token): {str(e).splitlines()[0]}") from e
        except (ConnectionError, requests.exceptions.RequestException) as e:
            self._client = None
            raise RayUnavailable(f"the Ray job server at {self.address} is unreachable ({type(e).__name__}): "
                                 "start Ray (`ray start --head`) or set DAD_RAY_ADDRESS") from e
        except RuntimeError as e:
            if "status code 5" in str(e) and "does not exist" not in str(e):
                raise RayUnavailable(f"the Ray job server at {self.address} failed: {str(e)[:300]}") from e
            raise

    def submit(self, run_id: str, entrypoint: str, metadata: dict[str, str], runtime_env: dict[str, Any]) -> None:
        client = self._connect()
        try:
            self._call(lambda: client.submit_job(entrypoint=entrypoint, submission_id=run_id, metadata=metadata,
                                                 runtime_env=runtime_env))
        except RayUnavailable:
            raise
        except RuntimeError as e:
            if "already exists" not in str(e):
                raise
            existing = self.state(run_id)
            if existing is None or (existing.metadata or {}).get(META_CONFIG) != metadata.get(META_CONFIG):
                raise JobConflict(f"Ray already holds a job with submission id {run_id!r} made from a different "
                                  "config; choose another run id") from None
            log.info("run %s was already submitted to Ray; not submitting it again", run_id)

    def state(self, run_id: str) -> JobState | None:
        client = self._connect()
        try:
            info = self._call(lambda: client.get_job_info(run_id))
        except RuntimeError as e:
            if "does not exist" in str(e) or "404" in str(e):
                return None
            raise
        return JobState(status=str(getattr(info.status, "value", info.status)), message=info.message or "",
                        started_at=_ms(info.start_time), finished_at=_ms(info.end_time),
                        metadata=dict(info.metadata or {}))

    def logs(self, run_id: str) -> str:
        client = self._connect()
        return self._call(lambda: client.get_job_logs(run_id))

    def stop(self, run_id: str) -> bool:
        client = self._connect()
        return bool(self._call(lambda: client.stop_job(run_id)))


class LocalProcessLauncher:
    """The same four calls, each job a child process of this one (`make demo`, experiments, tests): no Ray job
    server needed. `submit` blocks until the job exits, so a stage's outputs exist when it returns."""

    def __init__(self, env: dict[str, str] | None = None):
        self.env = dict(env or {})
        self._states: dict[str, JobState] = {}

    def submit(self, run_id: str, entrypoint: str, metadata: dict[str, str], runtime_env: dict[str, Any]) -> None:
        import shlex
        import subprocess

        existing = self._states.get(run_id)
        if existing is not None:
            if (existing.metadata or {}).get(META_CONFIG) != metadata.get(META_CONFIG):
                raise JobConflict(f"run id {run_id!r} already ran here from a different config")
            return
        env = {**os.environ, **self.env, **runtime_env.get("env_vars", {})}
        started = datetime.now(timezone.utc)
        self._states[run_id] = JobState("RUNNING", "", started, None, dict(metadata))
        code = subprocess.run(shlex.split(entrypoint), env=env).returncode  # output goes to our terminal
        status, message = ("SUCCEEDED", "") if code == 0 else ("FAILED", f"exited with status {code}")
        self._states[run_id] = JobState(status, message, started, datetime.now(timezone.utc), dict(metadata))

    def state(self, run_id: str) -> JobState | None:
        return self._states.get(run_id)

    def logs(self, run_id: str) -> str:
        return ""  # the job wrote to this process's terminal

    def stop(self, run_id: str) -> bool:
        return False  # submit returns only once the job has ended
