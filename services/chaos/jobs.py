"""The rehearsal's jobs and their comparison: each job's real command line and environment, a plain (fault-free)
run of one, and whether two sample sets are the same set. Used by every phase (rehearsal, disk)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.chaos.faults import kill_session

if TYPE_CHECKING:
    from services.chaos.rehearsal import ChaosConfig

REPO = Path(__file__).resolve().parents[2]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def job_env() -> dict[str, str]:
    env = {**os.environ, **CREDENTIALS, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    return env

def generate_argv(cfg: ChaosConfig, source: Path, out: str, name: str, endpoint: str | None) -> list[str]:
    argv = [sys.executable, "-m", "services.generator", "--source", str(source), "--out", out, "--name", name,
            "--preset", "tiny", "--shard-size", str(cfg.shard_size), "--batch-size", str(cfg.batch_size),
            "--num-cpus", str(cfg.num_cpus), "--cpus-per-actor", "1", "--num-actors", "1", "--no-progress"]
    argv += ["--set", f"attack.steps={cfg.attack_steps}"] if cfg.attack_steps else []
    return argv + (["--storage-option", f"endpoint_url={endpoint}"] if endpoint else [])

def train_argv(cfg: ChaosConfig, source: Path, manifest: str, out: str, endpoint: str) -> list[str]:
    return [sys.executable, "-m", "services.trainer", "--source", str(source), "--samples", manifest, "--out", out,
            "--preset", "tiny", "--student", "test_resnet", "--objective", "dad", "--epochs", str(cfg.epochs),
            "--batch-size", "32", "--max-steps-per-epoch", str(cfg.steps_per_epoch), "--workers", "1",
            "--cpus-per-worker", "1", "--loader-workers", "0", "--max-failures", "3", "--lr", "0.01",
            "--seed", str(cfg.seed), "--no-progress", "--storage-option", f"endpoint_url={endpoint}"]

def run_plain(name: str, argv: list[str], log_dir: Path) -> tuple[int, float]:
    t0 = time.monotonic()
    with open(log_dir / f"{name}.log", "wb") as f:
        proc = subprocess.Popen(argv, cwd=REPO, env=job_env(), stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        rc = proc.wait()
    kill_session(proc.pid)  # what outlived the driver
    return rc, round(time.monotonic() - t0, 2)

_VOLATILE = {"created_at", "timings", "code_version"}  # and each shard's file name (a token per attempt)

def manifest_core(manifest: dict) -> dict:
    """The manifest without what legitimately differs between two runs: times, run count, shard file tokens."""
    core = {k: v for k, v in manifest.items() if k not in _VOLATILE}
    core["shards"] = [{k: v for k, v in s.items() if k != "path"} for s in manifest["shards"]]
    return core

def compare_sets(base_uri: str, chaos_uri: str, storage: dict | None = None) -> dict[str, Any]:
    """Identical sets? sample ids (lost, duplicated), shard bytes (sha256), manifests without times."""
    from schemas import sample_store as ss
    from services.sample_store import open_sample_set, verify_sample_set
    from services.storage import open_filesystem

    def manifest(uri: str) -> dict:
        fs, path = open_filesystem(uri, storage)
        return json.loads(fs.cat_file(f"{path}/manifest.json"))

    base, chaos = manifest(base_uri), manifest(chaos_uri)
    verify_sample_set(chaos_uri, storage)  # checksums, row counts, no duplicated sample_id
    ids = {name: open_sample_set(uri, ss.KINDS, accepted_only=False, storage_options=storage).index[ss.COL_SAMPLE_ID].to_pylist()
           for name, uri in (("baseline", base_uri), ("chaos", chaos_uri))}
    b, c = set(ids["baseline"]), set(ids["chaos"])
    diff_shards = [i for i, (x, y) in enumerate(zip(base["shards"], chaos["shards"])) if x["sha256"] != y["sha256"]]
    core_equal = manifest_core(base) == manifest_core(chaos)
    return {"rows": len(ids["chaos"]), "baseline_rows": len(ids["baseline"]), "lost": len(b - c),
            "extra": len(c - b), "duplicated": len(ids["chaos"]) - len(c), "shards": len(chaos["shards"]),
            "shards_with_other_bytes": diff_shards, "manifest_equal_but_times": core_equal,
            "runs_recorded": chaos["timings"]["runs"],
            "identical": core_equal and not diff_shards and b == c and len(ids["chaos"]) == len(c)}
