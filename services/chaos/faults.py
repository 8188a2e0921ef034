"""The seeded fault plan and the one-process-at-a-time injector: run a job as a user would (the same command,
re-run after it dies), fire faults at seeded points of its progress, and time how long each one cost.

A fault fires once the job's progress reaches its seeded threshold *and* its seeded delay has passed since the
previous fault recovered, so it lands mid-run whatever the machine's speed. "Recovered" means progress moved
past where it was when the fault fired (or the job finished); `recover_s` is how long that took.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

GENERATE_KINDS = ("actor_kill", "driver_kill", "s3_restart", "s3_slowdown", "s3_reset")
TRAIN_KINDS = ("train_worker_kill", "train_driver_kill", "s3_slowdown", "s3_reset")
LOOKUP_S = 30.0  # a kill with no process to hit gives up after this long (reported as not fired)
PROCESS_MARKERS = {"actor_kill": b"DADWorker", "train_worker_kill": b"RayTrainWorker"}


@dataclass
class Fault:
    kind: str
    threshold: float          # progress fraction at which it may fire
    delay_s: float            # and not before this long after the previous fault recovered
    param: float              # seconds down (s3_restart) or of the error window (s3_slowdown / s3_reset)


@dataclass
class FaultRecord:
    phase: str
    kind: str
    fired_at_s: float | None = None     # since the phase started; None: not fired (why in `detail`)
    detail: str = ""
    recovered: bool = False
    recover_s: float | None = None      # fault -> progress past its level (or the job finished)
    time_lost_s: float | None = None    # recover_s minus the fault-free run's usual time per progress step

    def as_dict(self) -> dict:
        return asdict(self)


def plan_faults(kinds: tuple[str, ...], count: int, seed: int, max_threshold: float = 0.85,
                min_delay_s: float = 1.0, max_delay_s: float = 6.0, ordered: bool = False) -> list[Fault]:
    """`count` faults: every kind at least once (when count allows), the rest drawn; thresholds ascending.
    `ordered`: the kinds fire in the order given (a short run that must see each), else in a seeded order."""
    unknown = set(kinds) - set(GENERATE_KINDS) - set(TRAIN_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {sorted({*GENERATE_KINDS, *TRAIN_KINDS})}")
    rng = random.Random(seed)
    chosen = list(kinds[:count]) + [rng.choice(kinds) for _ in range(count - len(kinds))]
    if not ordered:
        rng.shuffle(chosen)
    thresholds = sorted(rng.uniform(0.05, max_threshold) for _ in chosen)
    return [Fault(kind, round(t, 3), round(rng.uniform(min_delay_s, max_delay_s), 2),
                  round(rng.uniform(1.0, 3.0) if kind == "s3_restart" else rng.uniform(3.0, 8.0), 2))
            for kind, t in zip(chosen, thresholds)]


def group_pids(leader: int, marker: bytes) -> list[int]:
    """PIDs in the session of `leader` whose command line contains `marker`: the job's own Ray workers (Ray
    puts each worker in a process group of its own, but they stay in the driver's session)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.getsid(int(name)) != leader:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if marker in f.read():
                    pids.append(int(name))
        except (OSError, ProcessLookupError):
            continue
    return sorted(pids)


def kill_session(leader: int) -> None:
    """SIGKILL every process of the session `leader` started (the driver, its raylet, and Ray's workers, which
    sit in process groups of their own)."""
    for pid in [leader, *group_pids(leader, b"")]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class JobRun:
    """One job, run and re-run as a user would until it exits 0; every attempt's log is kept."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_dir: Path
    attempts: list[dict] = field(default_factory=list)   # {"rc", "killed", "wall_s", "log"} per attempt
    proc: subprocess.Popen | None = None
    _killed: bool = False
    _t0: float = 0.0

    def start(self) -> None:
        log = self.log_dir / f"{self.name}-{len(self.attempts) + 1}.log"
        self._killed, self._t0 = False, time.monotonic()
        # Its own session: killing the group takes the job's local Ray down with it, like a lost node.
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=open(log, "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.attempts.append({"log": str(log), "rc": None, "killed": False, "wall_s": None})

    def kill(self) -> None:
        """SIGKILL the whole job (driver and its Ray), then wait for it."""
        self._killed = True
        kill_session(self.proc.pid)
        self.proc.wait()

    def poll(self) -> int | None:
        """None while running; the exit code once it ended (and the attempt is recorded)."""
        rc = self.proc.poll()
        if rc is not None and self.attempts[-1]["rc"] is None:
            self.attempts[-1].update(rc=rc, killed=self._killed, wall_s=round(time.monotonic() - self._t0, 2))
            if not self._killed:  # leftovers of the job (a raylet or worker that outlived the driver) go too
                kill_session(self.proc.pid)
        return rc


class Injector:
    """Drives one phase: start the job, fire `faults` in order, re-run it after a kill or a failure, until done.

    `progress()` returns a fraction in [0, 1] (None when it cannot be read, e.g. the store is down); `fire(kind,
    param, job)` injects one fault and returns a detail string, or raises LookupError when it cannot (no such
    process yet), in which case it is retried a little later.
    """

    def __init__(self, phase: str, job: JobRun, faults: list[Fault], progress: Callable[[], float | None],
                 fire: Callable[[Fault, JobRun], str], step_s: float, deadline: float, max_reruns: int = 10):
        self.phase, self.job, self.faults, self.progress, self.fire = phase, job, faults, progress, fire
        self.step_s, self.deadline, self.max_reruns = step_s, deadline, max_reruns
        self.records: list[FaultRecord] = []
        self.unplanned: list[dict] = []      # attempts that failed without a kill: findings

    def run(self) -> bool:
        t0 = time.monotonic()
        pending = list(self.faults)
        open_fault: tuple[FaultRecord, float, float] | None = None   # record, fired at, progress then
        last_recovery = t0
        level = 0.0
        looking_since: float | None = None
        self.job.start()
        while True:
            now = time.monotonic()
            p = self.progress()
            level = p if p is not None else level
            rc = self.job.poll()
            if open_fault is not None:
                rec, at, before = open_fault
                if (p is not None and p > before) or rc == 0:
                    rec.recovered, rec.recover_s = True, round(now - at, 2)
                    rec.time_lost_s = round(max(0.0, rec.recover_s - self.step_s), 2)
                    open_fault, last_recovery = None, now
            if rc is not None:
                if rc == 0:
                    break
                if not self.job.attempts[-1]["killed"]:
                    self.unplanned.append({"attempt": len(self.job.attempts), "rc": rc,
                                           "log_tail": _tail(self.job.attempts[-1]["log"])})
                if len(self.job.attempts) > self.max_reruns:
                    break
                self.job.start()  # the user re-runs the same command
                continue
            if now > self.deadline and pending:  # out of time: the rest are reported as not fired
                for f in pending:
                    self.records.append(FaultRecord(self.phase, f.kind, detail="not fired: time budget spent"))
                pending = []
            if pending and open_fault is None and level >= pending[0].threshold \
                    and now - last_recovery >= pending[0].delay_s:
                fault = pending[0]
                try:
                    detail = self.fire(fault, self.job)
                except LookupError as e:  # nothing to hit yet: try again shortly, for LOOKUP_S at most
                    looking_since = looking_since or now
                    last_recovery = now - fault.delay_s + 0.5
                    if now - looking_since > LOOKUP_S:
                        pending.pop(0)
                        self.records.append(FaultRecord(self.phase, fault.kind, detail=f"not fired: {e}"))
                        looking_since = None
                    continue
                looking_since = None
                pending.pop(0)
                rec = FaultRecord(self.phase, fault.kind, round(time.monotonic() - t0, 2), detail)
                self.records.append(rec)
                open_fault = (rec, time.monotonic(), level)
            time.sleep(0.25)
        for f in pending:
            self.records.append(FaultRecord(self.phase, f.kind, detail="not fired: the job finished first"))
        return self.job.attempts[-1]["rc"] == 0


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
