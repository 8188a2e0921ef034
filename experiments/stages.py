"""Experiment stages keyed by a hash of their full configuration: a finished stage is reused only when
everything that made it is the same.

A generate / train / eval stage is a job started the control plane's way (`StageRunner.job`: a typed run
config, `services.api.launch.start_job`, a local-process launcher): its run id is `<name>-<key>` with key the
API's own hash of the run config (upstream stages named by their keyed ids), its real config is in
`<store>/runs/<id>/run.json`, and its outputs are where the API would put them. Other services (fitting Q)
run as a command (`StageRunner.run`), keyed by sha256 of the stage's name and configuration. Either way,
changing an attack step makes a new sample set, which makes new students, and never silently reuses the old
ones. A record per stage (`<records>/<name>-<key>.json`) holds the configuration, the command, its wall time
and whether it finished.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence


def config_key(name: str, config: Any) -> str:
    """12 hex digits of sha256 over the canonical JSON of (name, config)."""
    text = json.dumps({"stage": name, "config": config}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class StageResult:
    name: str
    out: Path
    key: str
    seconds: float
    reused: bool


class StageRunner:
    """Runs stages as subprocesses, skipping those whose configuration already finished.

    Records live apart from the outputs (`<records>/<name>-<key>.json`), so a service gets an output folder
    it made itself (the generator refuses to write into a folder it does not know).
    """

    def __init__(self, records: Path, threads: int = 2, log: Callable[[str], None] = print,
                 env: dict[str, str] | None = None, store: Path | None = None):
        self.records, self.threads, self.log = records, threads, log
        self.env = dict(env or {})  # e.g. RAY_ADDRESS + RAY_AUTH_TOKEN of one Ray every stage joins
        self.store = store  # where jobs write, laid out as the control plane's store (runs/, sample-sets/)
        self.results: list[StageResult] = []

    def _env(self) -> dict[str, str]:
        return {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(self.threads), **self.env}

    def job(self, name: str, kind: str, config: dict[str, Any]) -> StageResult:
        """A `kind` job (generate, train, eval) from its run config (schemas.api.JOB_KINDS), started as the
        control plane starts jobs; reused when a job of the same run config finished."""
        from schemas.api import JOB_KINDS, run_config_sha256
        from services.api.entrypoints import build_job
        from services.api.launch import record_final_state, start_job
        from services.api.launcher import LocalProcessLauncher
        from services.api.store import Store

        if self.store is None:
            raise ValueError("StageRunner.job needs the store the jobs write into (store=...)")
        typed = JOB_KINDS[kind].run_config.model_validate(config)
        config_json = typed.model_dump(mode="json")
        key = run_config_sha256(kind, config_json)[:12]
        run_id = f"{name}-{key}"
        store = Store(str(self.store))
        spec = build_job(kind, run_id, typed, store, sys.executable)
        out = Path(store.set_path(run_id) if kind == "generate" else store.run_path(run_id))

        def execute() -> None:
            launcher = LocalProcessLauncher(self._env())
            start_job(store, launcher, kind, run_id, typed, sys.executable, job=spec)
            status = record_final_state(store, launcher, run_id)
            if status is None or status.status != "SUCCEEDED":
                raise subprocess.CalledProcessError(1, spec.argv, f"{name}: {status.message if status else 'no status'}")

        return self._stage(name, key, out, {"kind": kind, "run_config": config_json}, spec.argv[2:], execute)

    def run(self, name: str, parent: Path, config: dict[str, Any],
            command: Callable[[Path], Sequence[str]]) -> StageResult:
        """`python -m <command(out)>` with out = `<parent>/<name>-<key>`, unless that configuration finished."""
        key = config_key(name, config)
        out = parent / f"{name}-{key}"
        cmd = [sys.executable, "-m", *command(out)]
        env = {**os.environ, **self._env()}
        # a failed stage stays unfinished: the next run resumes it
        return self._stage(name, key, out, config, cmd[2:], lambda: subprocess.run(cmd, check=True, env=env))

    def _stage(self, name: str, key: str, out: Path, config: dict[str, Any], command: Sequence[str],
               execute: Callable[[], Any]) -> StageResult:
        record_path = self.records / f"{name}-{key}.json"
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        if record.get("finished"):
            result = StageResult(name, out, key, float(record["seconds"]), True)
            self.log(f"[reuse] {name}: {out} (same configuration)")
        else:
            record = {"name": name, "key": key, "out": str(out), "config": config, "command": list(command)}
            self.records.mkdir(parents=True, exist_ok=True)
            record_path.write_text(json.dumps(record, indent=2, default=str))
            self.log(f"\n=== {name} -> {out}\n    {' '.join(command)}")
            t0 = time.time()
            execute()
            record.update(seconds=round(time.time() - t0, 1), finished=True, finished_at=time.time())
            record_path.write_text(json.dumps(record, indent=2, default=str))
            result = StageResult(name, out, key, record["seconds"], False)
        self.results.append(result)
        return result

    def timings(self) -> dict[str, dict[str, Any]]:
        """Wall time per stage of this invocation (reused stages carry the time they took when made)."""
        return {r.out.name: {"stage": r.name, "seconds": r.seconds, "reused": r.reused} for r in self.results}
