"""Checks run on the driver before any worker starts: a bad input fails in seconds, naming the problem,
instead of crashing a worker an hour into training.

Covers the student name, the preset and its overrides, the source, the sample set (manifest readable,
classes equal to the source's, every shard present at its recorded size and, unless --skip-verify, with the
sha256 its manifest records), the validation source, and the output folder (writable; if it holds a run,
that run's config must match, so re-running resumes it).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from dad_core import Preset, create_student
from dad_core.students import RANDOM_INIT
from schemas.manifest import SampleSetManifest
from services.sample_store import load_manifest
from services.source import SourceListing, list_source
from services.storage import StorageError, cache_dir, check_writable, join, open_filesystem
from services.trainer.checkpointing import RunStore
from services.trainer.config import TrainConfig
from services.trainer.student_init import build_student, resolved_init
from services.trainer.data.views import resolve_views


class TrainInputError(ValueError):
    """An input that cannot be trained on; raised before training starts."""


@dataclass
class Plan:
    """What preflight found: shown to the user before training starts."""

    class_names: list[str]
    source_items: int
    sample_rows: int | None = None
    accepted: int | None = None
    resume_epoch: int = 0
    views: int = 0                      # stored views the run cycles through (services.trainer.data.views)
    student_init: dict | None = None    # where a new run's weights start (services.trainer.student_init)
    warnings: list[str] = field(default_factory=list)

    def describe(self, cfg: TrainConfig) -> str:
        init = self.student_init or {}
        start = {"file": f", from {init.get('path')} (classifier {init.get('head')})",
                 "pretrained": f", from timm's {init.get('weights')} (classifier {init.get('head')})"}.get(
                     init.get("init"), "")
        lines = [f"student {cfg.student} ({len(self.class_names)} classes){start}, objective {cfg.objective}"
                 + (f", teacher logits {cfg.teacher_logits}" if cfg.uses_teacher else ""),
                 f"source {cfg.source}: {self.source_items} items"]
        if cfg.samples:
            lines.append(f"samples {cfg.samples}: {self.sample_rows} rows, {self.accepted} accepted Q(x')")
        if self.views:
            lines.append(f"augmentation: {self.views} stored views per image (epoch e shows view e mod {self.views})")
        lines.append(f"resuming after epoch {self.resume_epoch}" if self.resume_epoch else "starting a new run")
        return "\n".join(lines + [f"warning: {w}" for w in self.warnings])


def preflight(cfg: TrainConfig, preset: Preset | None = None, echo: Callable[[str], None] | None = None) -> Plan:
    """Validate every input of `cfg` (whose preset the job resolved once: `preset`); raise TrainInputError
    naming the first problem found. `echo` gets progress lines of the shard verification (default: stderr)."""
    try:
        return _preflight(cfg, preset or cfg.resolve_preset(), echo or _stderr)
    except TrainInputError:
        raise
    except (ValueError, StorageError, FileNotFoundError) as e:
        raise TrainInputError(str(e)) from e


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _preflight(cfg: TrainConfig, preset: Preset, echo: Callable[[str], None]) -> Plan:
    source = list_source(cfg.source, cfg.source_format, cfg.class_map, cfg.storage_options)
    with torch.device("meta"):  # checks the name without allocating weights
        create_student(cfg.student, num_classes=len(source.class_names))
    plan = Plan(list(source.class_names), len(source.items))
    manifest = None
    if cfg.samples:
        manifest = load_manifest(cfg.samples, cfg.storage_options)  # corrupt / unpublished / wrong version
        if manifest.statistics.clean == 0:
            raise TrainInputError(f"sample set {cfg.samples!r} has no images (errored: "
                                  f"{manifest.statistics.errored.reasons or 'none'})")
        _check_classes(manifest, source, cfg.samples)
        _check_shards(manifest, cfg)
        if cfg.verify_shards:
            verify_shards(manifest, cfg, echo)
        plan.sample_rows, plan.accepted = manifest.num_rows, manifest.statistics.accepted
        if manifest.source.sha256 != source.fingerprint().sha256:
            plan.warnings.append(f"the source changed since the sample set was made ({manifest.source.num_items} "
                                 f"items then, {len(source.items)} now); training uses the set's clean rows")
        if cfg.needs_adversarial and cfg.adversarial_rows == "accepted" and manifest.statistics.accepted == 0:
            plan.warnings.append("the sample set has no accepted Q(x'): the adversarial term will be 0")
        if cfg.needs_teacher_model and manifest.config.preset_config.get("teacher") != _asdict(preset.teacher):
            plan.warnings.append("the online teacher differs from the one that made (and accepted) the samples")
    plan.views = resolve_views(cfg, manifest)  # views asked for must be in the set
    if cfg.val:
        val = list_source(cfg.val, "auto", cfg.class_map, cfg.storage_options)
        if val.class_ids != source.class_ids:
            raise TrainInputError(f"validation source {cfg.val!r} has classes {_diff(source.class_ids, val.class_ids)} "
                                  "that do not match the training source")
    plan.resume_epoch = _check_out(cfg)
    if not plan.resume_epoch:
        plan.student_init = _check_student_init(cfg, preset, len(source.class_names))
    return plan


def _check_student_init(cfg: TrainConfig, preset: Preset, num_classes: int) -> dict | None:
    """A new run's starting weights load (file read and matched, timm weights in the cache) before any worker
    starts; returns their lineage record. Random init: nothing to check."""
    init = resolved_init(cfg.student_init, preset.student_init)
    if init == RANDOM_INIT:
        return {"init": RANDOM_INIT}
    try:
        return build_student(cfg.student, num_classes, init, cfg.storage_options)[1]
    except (ValueError, FileNotFoundError, StorageError) as e:
        raise TrainInputError(f"student_init: {e}") from e


def _asdict(obj) -> dict:
    import dataclasses

    return dataclasses.asdict(obj)


def _diff(expected: list[str], got: list[str]) -> str:
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if not missing and not extra:
        return f"in a different order ({got[:5]}... vs {expected[:5]}...)"
    more = lambda xs: "..." if len(xs) > 5 else ""  # noqa: E731
    return f"(missing {missing[:5]}{more(missing)}, extra {extra[:5]}{more(extra)})"


def _check_classes(manifest: SampleSetManifest, source: SourceListing, samples: str) -> None:
    if manifest.config.class_ids != source.class_ids:
        raise TrainInputError(f"sample set {samples!r} was made for {len(manifest.config.class_ids)} classes "
                              f"{_diff(source.class_ids, manifest.config.class_ids)} but the source "
                              f"{source.uri!r} has {len(source.class_ids)}: its labels and teacher logits "
                              "would index the wrong classes")
    if manifest.config.class_names != source.class_names:
        raise TrainInputError(f"sample set {samples!r} names its classes differently from the source "
                              f"(first: {manifest.config.class_names[:3]} vs {source.class_names[:3]}); pass the "
                              "same --class-map the generator used")


def _check_shards(manifest: SampleSetManifest, cfg: TrainConfig) -> None:
    """Every shard the manifest lists exists at its recorded size (one listing per folder, not one call each)."""
    fs, path = open_filesystem(cfg.samples, cfg.storage_options)
    root = path.rsplit("/", 1)[0] if path.endswith(".json") else path
    sizes: dict[str, int] = {}
    for folder in sorted({join(root, s.path).rsplit("/", 1)[0] for s in manifest.shards}):
        fs.invalidate_cache(folder)
        try:
            entries = fs.ls(folder, detail=True)
        except FileNotFoundError:
            continue
        sizes.update({e["name"].rstrip("/"): int(e.get("size") or 0) for e in entries})
    missing = [s.path for s in manifest.shards if join(root, s.path) not in sizes]
    if missing:
        raise TrainInputError(f"sample set {cfg.samples!r} is missing {len(missing)} of {len(manifest.shards)} "
                              f"shards listed in its manifest: {missing[:5]}")
    wrong = [f"{s.path} ({sizes[join(root, s.path)]} bytes, manifest says {s.num_bytes})"
             for s in manifest.shards if sizes[join(root, s.path)] != s.num_bytes]
    if wrong:
        raise TrainInputError(f"sample set {cfg.samples!r} has shards of the wrong size (truncated or replaced): "
                              f"{wrong[:5]}")


def verified_dir() -> Path:
    """Where verified-set markers live: $DAD_CACHE_DIR/verified, else $XDG_CACHE_HOME (or ~/.cache)/dad/verified."""
    return Path(cache_dir()) / "verified"


def _shard_stamps(fs, root: str, manifest: SampleSetManifest) -> dict[str, list]:
    """{shard path: [size, modification stamp]} from one listing per folder: a rewritten file changes its stamp."""
    stamps: dict[str, list] = {}
    for folder in sorted({join(root, s.path).rsplit("/", 1)[0] for s in manifest.shards}):
        fs.invalidate_cache(folder)
        for e in fs.ls(folder, detail=True):
            stamp = e.get("mtime") or e.get("LastModified") or e.get("ETag") or e.get("last_modified")
            stamps[e["name"].rstrip("/")] = [int(e.get("size") or 0), str(stamp)]
    return {s.path: stamps.get(join(root, s.path)) for s in manifest.shards}


def verify_shards(manifest: SampleSetManifest, cfg: TrainConfig, echo: Callable[[str], None],
                  chunk_bytes: int = 1 << 20, interval_s: float = 5.0) -> None:
    """Stream every shard through sha256 and compare with the manifest: a same-size corruption is found now,
    naming the shard, not mid-epoch (or never).

    Once a set passes, a marker keyed by the set's URI and manifest digest records each shard's size and
    modification stamp; a later start whose shards carry the same stamps skips the hashing (a 224-px
    ImageNet set is ~380 GB: minutes at every start otherwise). A rewritten shard changes its stamp.
    """
    fs, path = open_filesystem(cfg.samples, cfg.storage_options)
    root = path.rsplit("/", 1)[0] if path.endswith(".json") else path
    key = hashlib.sha256(f"{fs.unstrip_protocol(root)}\n{manifest.to_json()}".encode()).hexdigest()
    marker = verified_dir() / f"{key}.json"
    stamps = _shard_stamps(fs, root, manifest)
    try:
        seen = json.loads(marker.read_text())
    except (OSError, ValueError):
        seen = None
    if isinstance(seen, dict) and seen.get("shards") == stamps and None not in stamps.values():
        echo(f"shards verified on {seen.get('verified_at')} and unchanged since: not hashed again ({marker})")
        return
    total = sum(s.num_bytes for s in manifest.shards)
    done, last, t0 = 0, time.monotonic(), time.monotonic()
    echo(f"verifying {len(manifest.shards)} shards ({total / 1e6:.1f} MB) against the manifest's sha256 "
         "(--skip-verify skips this; once verified, a set is not hashed again)")
    for k, shard in enumerate(manifest.shards, 1):
        digest = hashlib.sha256()
        with fs.open(join(root, shard.path), "rb") as f:
            while chunk := f.read(chunk_bytes):
                digest.update(chunk)
                done += len(chunk)
                if time.monotonic() - last > interval_s:
                    echo(f"verifying shards: {k - 1}/{len(manifest.shards)} done, {done / 1e6:.1f}/{total / 1e6:.1f} MB")
                    last = time.monotonic()
        if digest.hexdigest() != shard.sha256:
            raise TrainInputError(f"shard {shard.path} of sample set {cfg.samples!r} is corrupt: its sha256 is "
                                  f"{digest.hexdigest()}, the manifest says {shard.sha256}; regenerate the set "
                                  "(or restore the shard) — resuming cannot fix it")
    seconds = time.monotonic() - t0
    echo(f"verified {len(manifest.shards)} shards ({total / 1e6:.1f} MB, {total / 1e6 / max(seconds, 1e-9):.0f} MB/s)")
    try:  # best effort: a read-only home only means hashing again next time
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"set": fs.unstrip_protocol(root), "shards": stamps,
                                      "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
    except OSError:
        pass


def _check_out(cfg: TrainConfig) -> int:
    """Output writable; an existing run there must have the same config. Returns the epochs already done."""
    store = RunStore(cfg.out, cfg.storage_options)
    check_writable(store.fs, store.path)
    saved = store.read_config()
    if saved is not None:
        conflicts = cfg.resume_conflicts(saved)
        if conflicts:
            raise TrainInputError(f"{store.uri} holds a run with a different config, so it cannot be resumed "
                                  f"({'; '.join(conflicts[:5])}): use another --out")
    latest = store.latest()
    return latest["epoch"] if latest else 0
