"""The full-disk fault: a local store on a small tmpfs fills up mid-run; the job must fail with an error naming
the store, publish no (half-written) manifest, and finish the set once space is freed (same command re-run).

Mounting needs root (or CAP_SYS_ADMIN); where it is refused, the phase says so and is skipped, never silently.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from services.chaos.faults import FaultRecord
from services.chaos.jobs import compare_sets, generate_argv, run_plain
from services.chaos.source import make_source


def _mount(target: Path, size: int) -> str | None:
    """None when mounted, else why not."""
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"mount exited {done.returncode}")


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def disk_full_phase(cfg, logs: Path) -> tuple[dict, FaultRecord]:
    root = cfg.out / "disk"
    source = make_source(root / "source", cfg.disk_images, cfg.seed + 7)
    small = cfg.__class__(**{**cfg.__dict__, "shard_size": 10, "batch_size": 10})
    rc, base_s = run_plain("disk-baseline", generate_argv(small, source, str(root / "free"), "set", None), logs)
    if rc != 0:
        raise RuntimeError(f"the fault-free small generation failed (exit {rc}): see {logs}/disk-baseline.log")
    size = sum(p.stat().st_size for p in (root / "free" / "set").rglob("*") if p.is_file())
    limit = max(64 * 1024, (int(size * 0.45) // 4096) * 4096)
    mnt = root / "mnt"
    record = FaultRecord("disk_full", "disk_full")
    why = _mount(mnt, limit)
    if why is not None:
        record.detail = f"not fired: mounting a {limit}-byte tmpfs was refused ({why}); the full-disk fault is skipped"
        return {"skipped": record.detail}, record
    phase: dict = {"tmpfs_bytes": limit, "set_bytes": size, "baseline_wall_s": base_s}
    try:
        t0 = time.monotonic()
        rc1, s1 = run_plain("disk-full-1", generate_argv(small, source, str(mnt), "set", None), logs)
        record.fired_at_s = 0.0
        text = (logs / "disk-full-1.log").read_text(errors="replace")
        error_lines = [line for line in text.splitlines() if line.startswith("error:")]
        store = str(mnt / "set")
        phase.update(first_exit=rc1, first_wall_s=s1, error_line=error_lines[-1] if error_lines else None,
                     error_names_store=bool(error_lines) and store in error_lines[-1],
                     error_says_no_space=bool(error_lines) and "no space left" in error_lines[-1].lower(),
                     error_lines=len(error_lines),
                     manifest_after_failure=(mnt / "set" / "manifest.json").exists(),
                     files_after_failure=len(_files(mnt / "set")) if (mnt / "set").exists() else 0,
                     temp_files_after_failure=[f for f in _files(mnt) if ".tmp-" in f])
        record.detail = f"{limit}-byte tmpfs under the store ({size} bytes needed); exit {rc1}"
        subprocess.run(["mount", "-o", f"remount,size={64 * 1024 * 1024}", str(mnt)], check=True)
        rc2, s2 = run_plain("disk-full-2", generate_argv(small, source, str(mnt), "set", None), logs)
        phase.update(second_exit=rc2, second_wall_s=s2)
        record.recover_s = round(time.monotonic() - t0, 2)
        record.time_lost_s = round(max(0.0, record.recover_s - base_s), 2)
        if rc2 == 0:
            phase["compare"] = compare_sets(str(root / "free" / "set"), store)
        record.recovered = (rc1 != 0 and rc2 == 0 and not phase["manifest_after_failure"]
                            and phase["error_names_store"] and phase.get("compare", {}).get("identical", False))
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    return phase, record
