"""The rehearsal: a fault-free generation and training run, then the same under seeded faults, then a comparison.

    S3-protocol server (moto, 127.0.0.1)  <-  FaultyProxy (503 SlowDown, resets)  <-  generator / trainer jobs

1. generate (fault-free) -> `sample-sets/baseline/set`; under faults -> `sample-sets/chaos/set` (same set name)
2. train `dad` on each (fault-free / under faults) -> `runs/baseline`, `runs/chaos`
3. full disk: a local store on a small tmpfs, filled mid-run, then given room and resumed
4. control plane: the API server SIGKILLed with runs in flight and mid-ingest, restarted (control_plane.py)
5. compare: sample ids, shard bytes and manifests of the two sets; the two models tensor by tensor
Everything runs on loopback; each job is the real CLI in its own process group (so a kill takes its Ray too).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.chaos.faults import (
    GENERATE_KINDS, PROCESS_MARKERS, TRAIN_KINDS, Fault, Injector, JobRun, group_pids, plan_faults,
)
from services.chaos.jobs import CREDENTIALS, REPO, compare_sets, generate_argv, job_env, run_plain, train_argv
from services.chaos.proxy import FaultyProxy
from services.chaos.source import make_source

BUCKET = "dad-chaos"
log = logging.getLogger(__name__)


@dataclass
class ChaosConfig:
    """One rehearsal. `images` source images; `faults` per phase (generate, train); `duration_s` bounds the
    fault injection (faults not fired by then are reported as such, never dropped silently)."""

    out: Path
    images: int = 10_000
    seed: int = 0
    duration_s: float = 1200.0
    generate_faults: int = 8
    train_faults: int = 4
    shard_size: int = 100
    batch_size: int = 50
    epochs: int = 6
    steps_per_epoch: int = 60
    background_slowdown: float = 0.02   # share of requests answered 503 SlowDown all along
    train: bool = True                  # the training phase (the short test runs generation only)
    disk_full: bool = True
    api_kill: bool = True               # the control-plane phase (services.chaos.control_plane)
    disk_images: int = 150
    attack_steps: int | None = None     # slower generation per image, so faults land in a small run
    fault_delay_s: tuple[float, float] = (1.0, 6.0)  # a fault waits this long (drawn) after the last recovered
    generate_kinds: tuple[str, ...] = GENERATE_KINDS
    ordered: bool = False               # fire generate_kinds in the order given (the short test), else seeded order
    num_cpus: int = 2

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        for name in ("images", "shard_size", "batch_size", "epochs", "steps_per_epoch", "disk_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.images < 5:
            raise ValueError(f"images must be at least 5 (one per class), got {self.images}")
        if not 0 <= self.background_slowdown < 0.5:
            raise ValueError(f"background_slowdown must lie in [0, 0.5), got {self.background_slowdown}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3World:
    """moto on a fixed loopback port (so it can stop and come back at the same address, with its data) and the
    faulty proxy in front of it; jobs talk to the proxy, the rehearsal reads the truth from moto directly."""

    def __init__(self, seed: int):
        from moto.server import ThreadedMotoServer

        os.environ.update(CREDENTIALS)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.port = _free_port()
        self._server_cls = ThreadedMotoServer
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.lock = threading.Lock()
        import boto3
        from botocore.config import Config

        self.s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
                               config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=10))
        self.s3.create_bucket(Bucket=BUCKET)
        self.proxy = FaultyProxy(self.port, seed).start()
        self.restarts = 0

    @property
    def endpoint(self) -> str:
        return self.proxy.endpoint

    def restart(self, down_s: float) -> None:
        """Stop the server now; it comes back after `down_s` seconds (in the background), data intact."""
        with self.lock:
            self.server.stop()
            self.restarts += 1

        def back() -> None:
            with self.lock:
                self.server = self._server_cls(ip_address="127.0.0.1", port=self.port, verbose=False)
                self.server.start()

        threading.Timer(down_s, back).start()

    def error_window(self, kind: str, seconds: float, base_slowdown: float) -> None:
        rate = {"s3_slowdown": dict(slowdown=0.3, reset=0.0), "s3_reset": dict(slowdown=base_slowdown, reset=0.15)}[kind]
        self.proxy.set_rates(**rate)
        threading.Timer(seconds, self.proxy.set_rates, kwargs=dict(slowdown=base_slowdown)).start()

    def count(self, prefix: str) -> int | None:
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            return sum(len(p.get("Contents", [])) for p in pages)
        except Exception:  # noqa: BLE001 - the server is down on purpose: progress unknown
            return None

    def get(self, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None

    def stop(self) -> None:
        self.proxy.stop()
        with self.lock:
            self.server.stop()


# -- the jobs ------------------------------------------------------------------------------------------------


def _fire(world: S3World, cfg: ChaosConfig, rng_pick):
    def fire(fault: Fault, job: JobRun) -> str:
        if fault.kind in PROCESS_MARKERS:
            pids = group_pids(job.proc.pid, PROCESS_MARKERS[fault.kind])
            if not pids:
                raise LookupError(f"no {PROCESS_MARKERS[fault.kind].decode()} process in the job yet")
            pid = rng_pick(pids)
            os.kill(pid, 9)
            return f"SIGKILL pid {pid} ({PROCESS_MARKERS[fault.kind].decode()})"
        if fault.kind in ("driver_kill", "train_driver_kill"):
            pid = job.proc.pid
            job.kill()
            return f"SIGKILL process group {pid} (driver and its Ray), then the same command re-run"
        if fault.kind == "s3_restart":
            world.restart(fault.param)
            return f"S3 server stopped for {fault.param:.1f} s, restarted on the same port"
        world.error_window(fault.kind, fault.param, cfg.background_slowdown)
        what = "30% of requests answered 503 SlowDown" if fault.kind == "s3_slowdown" else "15% of connections reset"
        return f"{what} for {fault.param:.1f} s"
    return fire


# -- comparisons ---------------------------------------------------------------------------------------------


def compare_models(world: S3World, base_prefix: str, chaos_prefix: str) -> dict[str, Any]:
    import io

    import torch

    a = torch.load(io.BytesIO(world.get(f"{base_prefix}/model.pth")), weights_only=True)
    b = torch.load(io.BytesIO(world.get(f"{chaos_prefix}/model.pth")), weights_only=True)
    differ = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
    max_abs = max((float((a[k].float() - b[k].float()).abs().max()) for k in differ if k in b and a[k].is_floating_point()),
                  default=0.0)
    return {"tensors": len(a), "tensors_differing": len(differ), "max_abs_diff": max_abs,
            "bit_exact": not differ and set(a) == set(b)}


# -- the phases ----------------------------------------------------------------------------------------------
@dataclass
class Report:
    config: dict
    phases: dict[str, dict] = field(default_factory=dict)
    faults: list[dict] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    proxy: dict = field(default_factory=dict)
    wall_s: float = 0.0


def _median_gap(times: list[float]) -> float:
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    return gaps[len(gaps) // 2] if gaps else 1.0


def _watch(world: S3World, prefix: str, stop: threading.Event, out: list[float]) -> None:
    """Record when each new object under `prefix` appears (the fault-free run's pace)."""
    seen = 0
    while not stop.is_set():
        n = world.count(prefix) or 0
        out.extend([time.monotonic()] * max(0, n - seen))
        seen = max(seen, n)
        stop.wait(0.25)


def run_rehearsal(cfg: ChaosConfig) -> Report:
    import random

    t_all = time.monotonic()
    cfg.out.mkdir(parents=True, exist_ok=True)
    logs = cfg.out / "logs"
    logs.mkdir(exist_ok=True)
    report = Report(config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()})
    source = make_source(cfg.out / "source", cfg.images, cfg.seed)
    world = S3World(cfg.seed)
    rng = random.Random(cfg.seed + 1)
    storage = {"endpoint_url": f"http://127.0.0.1:{world.port}", "key": "testing", "secret": "testing"}
    deadline = time.monotonic() + cfg.duration_s
    try:
        sets = "store/sample-sets"  # baseline/set and chaos/set: same name, so the manifests may be equal
        # 1. generation: fault-free, then under faults
        stop, commits = threading.Event(), []
        watcher = threading.Thread(target=_watch, args=(world, f"{sets}/baseline/set/_commits/", stop, commits), daemon=True)
        watcher.start()
        rc, base_s = run_plain("generate-baseline", generate_argv(cfg, source, f"s3://{BUCKET}/{sets}/baseline", "set",
                                                                   world.endpoint), logs)
        stop.set()
        if rc != 0:
            raise RuntimeError(f"the fault-free generation failed (exit {rc}): see {logs}/generate-baseline.log")
        step_s = _median_gap(commits)
        world.proxy.set_rates(slowdown=cfg.background_slowdown)  # the baselines run without any fault
        shards = -(-cfg.images // cfg.shard_size)
        gen_job = JobRun("generate-chaos", generate_argv(cfg, source, f"s3://{BUCKET}/{sets}/chaos", "set", world.endpoint),
                         job_env(), REPO, logs)
        progress = lambda: (n / shards) if (n := world.count(f"{sets}/chaos/set/_commits/")) is not None else None
        inj = Injector("generate", gen_job, plan_faults(cfg.generate_kinds, cfg.generate_faults, cfg.seed, 0.85,
                                                          *cfg.fault_delay_s, ordered=cfg.ordered), progress,
                       _fire(world, cfg, rng.choice), step_s, deadline)
        t0 = time.monotonic()
        ok = inj.run()
        report.faults += [r.as_dict() for r in inj.records]
        report.findings += [{"phase": "generate", **u} for u in inj.unplanned]
        report.phases["generate"] = {"baseline_wall_s": base_s, "chaos_wall_s": round(time.monotonic() - t0, 2),
                                     "succeeded": ok, "attempts": gen_job.attempts, "shard_step_s": round(step_s, 2)}
        if ok:
            report.phases["generate"]["compare"] = compare_sets(f"s3://{BUCKET}/{sets}/baseline/set",
                                                                   f"s3://{BUCKET}/{sets}/chaos/set", storage)
        # 2. training: fault-free, then under faults (each on its own set: identical sets give identical models)
        if ok and cfg.train:
            runs = f"s3://{BUCKET}/store/runs"
            world.proxy.set_rates()
            rc, base_s = run_plain("train-baseline", train_argv(
                cfg, source, f"s3://{BUCKET}/{sets}/baseline/set/manifest.json", f"{runs}/baseline", world.endpoint), logs)
            if rc != 0:
                raise RuntimeError(f"the fault-free training failed (exit {rc}): see {logs}/train-baseline.log")
            world.proxy.set_rates(slowdown=cfg.background_slowdown)
            train_job = JobRun("train-chaos", train_argv(cfg, source, f"s3://{BUCKET}/{sets}/chaos/set/manifest.json",
                                                         f"{runs}/chaos", world.endpoint), job_env(), REPO, logs)
            progress = lambda: _train_progress(world, "store/runs/chaos", cfg.epochs, cfg.steps_per_epoch)
            faults = plan_faults(TRAIN_KINDS, cfg.train_faults, cfg.seed + 2, 0.5, *cfg.fault_delay_s)
            inj = Injector("train", train_job, faults, progress, _fire(world, cfg, rng.choice),
                           base_s / cfg.epochs, deadline)
            t0 = time.monotonic()
            ok = inj.run()
            report.faults += [r.as_dict() for r in inj.records]
            report.findings += [{"phase": "train", **u} for u in inj.unplanned]
            report.phases["train"] = {"baseline_wall_s": base_s, "chaos_wall_s": round(time.monotonic() - t0, 2),
                                      "succeeded": ok, "attempts": train_job.attempts}
            if ok:
                report.phases["train"]["compare"] = compare_models(world, "store/runs/baseline", "store/runs/chaos")
        report.proxy = {**world.proxy.counters.as_dict(), "server_restarts": world.restarts}
    finally:
        world.stop()
    # 3. full disk under a local store
    if cfg.disk_full:
        from services.chaos.disk import disk_full_phase

        phase, record = disk_full_phase(cfg, logs)
        report.phases["disk_full"] = phase
        report.faults.append(record.as_dict())
    # 4. the control plane killed with runs in flight and mid-ingest (its own Ray, API server and local store)
    if cfg.api_kill:
        from services.chaos.control_plane import api_kill_phase

        phase, records = api_kill_phase(cfg.out / "control-plane", logs)
        report.phases["control_plane"] = phase
        report.faults += [r.as_dict() for r in records]
    report.wall_s = round(time.monotonic() - t_all, 2)
    return report


def _train_progress(world: S3World, prefix: str, epochs: int, steps: int) -> float | None:
    """Steps logged so far (metrics.jsonl is re-uploaded every epoch and 30 s) over all steps, as a fraction."""
    try:
        data = world.get(f"{prefix}/checkpoints/latest.json")
    except Exception:  # noqa: BLE001 - the server is down on purpose: progress unknown
        return None
    return 0.0 if data is None else json.loads(data)["epoch"] / epochs
