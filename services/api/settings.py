"""The control plane's settings: one pydantic-settings object, built at startup (never at import).

Every field reads `DAD_<FIELD>` from the environment; `python -m services.api --flag` overrides it.
"""
from __future__ import annotations

import ipaddress
import os
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.storage import is_local, open_filesystem


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DAD_", extra="ignore")

    # Ray's Job Submission endpoint (the dashboard, e.g. http://127.0.0.1:8265). None: join the Ray that
    # runs on this machine, or start one (with its dashboard on 127.0.0.1) for the lifetime of the server.
    ray_address: str | None = None
    # Ray's own token when the cluster runs with RAY_AUTH_MODE=token (Ray 2.60's default for new local
    # clusters). None: Ray's lookup (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token).
    ray_auth_token: SecretStr | None = None
    ray_timeout_s: float = 10.0           # one call to the job server; slower counts as "unreachable"

    store_uri: str = "out/store"          # the object store: sample sets and run folders (source of truth)
    storage_options: dict[str, Any] = Field(default_factory=dict)  # fsspec options for remote stores
    database_url: str | None = None       # default: sqlite:///<store>/catalog.db (local store) or ./catalog.db

    auth_token: SecretStr | None = None   # bearer token for every mutating endpoint
    insecure_no_auth: bool = False        # allow mutations without a token (local experiments only)
    # The token on reads too (runs, their entrypoints and logs, sample sets, images, results). None: on when
    # the server binds a non-loopback address (`python -m services.api` resolves it from --host).
    auth_reads: bool | None = None
    # URI prefixes a request's inputs (source, class map, val, model, eval data) may start with, besides the
    # store. Empty: local paths under source_root only. Remote URLs outside them are refused (422), so a
    # caller cannot make jobs read another bucket with the cluster's credentials.
    allowed_sources: list[str] = Field(default_factory=list)
    source_root: str = "/"                # local folder request paths must lie under ("/": any local path)

    job_python: str = "python"            # the interpreter jobs run with, on the cluster's PATH
    job_env: dict[str, str] = Field(default_factory=dict)  # env vars given to every job (operator-set only)
    sync_interval_s: float = 2.0          # background refresh of run status and sample-set discovery; 0 = off
    log_tail_lines: int = 200

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if self.auth_token is None and not self.insecure_no_auth:
            raise ValueError("no auth token: set DAD_AUTH_TOKEN (or --auth-token), or run with "
                             "--insecure-no-auth to accept mutations from anyone who can reach the server")
        if self.auth_reads and self.auth_token is None:
            raise ValueError("--auth-reads needs a token: set DAD_AUTH_TOKEN (or --auth-token)")
        if self.auth_token is not None and len(self.auth_token.get_secret_value()) < 16:
            raise ValueError("DAD_AUTH_TOKEN must be at least 16 characters")
        if self.database_url is None:
            fs, root = open_filesystem(self.store_uri, self.storage_options)
            folder = root if is_local(fs) else os.getcwd()
            self.database_url = f"sqlite:///{os.path.abspath(os.path.join(folder, 'catalog.db'))}"
        return self


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def with_read_auth_for(settings: Settings, host: str) -> Settings:
    """`settings` with auth_reads resolved for a server bound to `host`: on by default off loopback."""
    if settings.auth_reads is not None:
        return settings
    return settings.model_copy(update={"auth_reads": settings.auth_token is not None and not is_loopback(host)})
