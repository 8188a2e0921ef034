"""Experiment stages keyed by a hash of their full configuration: a finished stage is reused only when
everything that made it is the same.

A stage is one service run (`python -m services.<job> ...`). Its output folder is `<parent>/<name>-<key>`,
where key = sha256 of the stage's name and configuration (its arguments, with upstream stages named by
their own keyed folders), so changing an attack step makes a new sample set, which makes new students,
and never silently reuses the old ones. A record per stage (`<records>/<name>-<key>.json`) holds the
configuration, the command, its wall time and whether it finished.
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
                 env: dict[str, str] | None = None):
        self.records, self.threads, self.log = records, threads, log
        self.env = dict(env or {})  # e.g. RAY_ADDRESS + RAY_AUTH_TOKEN of one Ray every stage joins
        self.results: list[StageResult] = []

    def run(self, name: str, parent: Path, config: dict[str, Any],
            command: Callable[[Path], Sequence[str]]) -> StageResult:
        """`python -m <command(out)>` with out = `<parent>/<name>-<key>`, unless that configuration finished."""
        key = config_key(name, config)
        out = parent / f"{name}-{key}"
        record_path = self.records / f"{name}-{key}.json"
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        if record.get("finished"):
            result = StageResult(name, out, key, float(record["seconds"]), True)
            self.log(f"[reuse] {name}: {out} (same configuration)")
        else:
            cmd = [sys.executable, "-m", *command(out)]
            record = {"name": name, "key": key, "out": str(out), "config": config, "command": cmd[2:]}
            self.records.mkdir(parents=True, exist_ok=True)
            record_path.write_text(json.dumps(record, indent=2, default=str))
            self.log(f"\n=== {name} -> {out}\n    {' '.join(cmd[2:])}")
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(self.threads), **self.env}
            t0 = time.time()
            subprocess.run(cmd, check=True, env=env)  # a failed stage stays unfinished: the next run resumes it
            record.update(seconds=round(time.time() - t0, 1), finished=True, finished_at=time.time())
            record_path.write_text(json.dumps(record, indent=2, default=str))
            result = StageResult(name, out, key, record["seconds"], False)
        self.results.append(result)
        return result

    def timings(self) -> dict[str, dict[str, Any]]:
        """Wall time per stage of this invocation (reused stages carry the time they took when made)."""
        return {r.out.name: {"stage": r.name, "seconds": r.seconds, "reused": r.reused} for r in self.results}
