"""The set's plan (`_plan.json`: what the set is made of and with which weights), and the checks that a
resumed run and its commit markers belong to that plan."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from schemas.manifest import ModelInfo, SampleSetConfig, SampleSetPlan, ShardCommit, Statistics
from services.generator.job import GenerationError, Job
from services.source.listing import SHARD_ORDER


def build_plan(job: Job, checksums: dict[str, str]) -> SampleSetPlan:
    p, cfg = job.preset, job.config
    config = SampleSetConfig(
        preset=p.name, preset_config=p.to_dict(), fingerprint=job.set_fingerprint,
        teacher=ModelInfo(kind=p.teacher.kind, name=p.teacher.model, weights=p.teacher.pretrained,
                          checksum=checksums["teacher"], weights_sha256=job.weights.get("teacher")),
        discretizer=ModelInfo(kind=p.discretizer.kind, name=p.discretizer.config, weights=p.discretizer.checkpoint,
                              checksum=checksums["discretizer"], weights_sha256=job.weights.get("discretizer")),
        attack=dataclasses.asdict(p.attack), seed=p.attack.seed, image_size=p.image_size,
        shard_size=cfg.shard_size, batch_size=cfg.batch_size,
        class_ids=job.listing.class_ids, class_names=job.listing.class_names, shard_order=SHARD_ORDER,
        views=job.views, requantize_every=cfg.requantize_every)
    return SampleSetPlan(name=job.name, config=config, source=job.listing.fingerprint(), num_shards=len(job.shards),
                         listing=Statistics(skipped=job.listing.skipped), started_at=datetime.now(timezone.utc))


def check_same_plan(old: SampleSetPlan, new: SampleSetPlan, uri: str) -> None:
    checks = {
        "store format version": (old.format_version, new.format_version),  # shards of two versions never mix
        "generation config": (old.config.fingerprint, new.config.fingerprint),
        "source": (old.source.sha256, new.source.sha256),
        "shard size": (old.config.shard_size, new.config.shard_size),
        "batch size": (old.config.batch_size, new.config.batch_size),
        "requantize_every": (old.config.requantize_every, new.config.requantize_every),  # which rows have *_vs_qqx
        "teacher weights": (old.config.teacher.checksum, new.config.teacher.checksum),
        "discretizer weights": (old.config.discretizer.checksum, new.config.discretizer.checksum),
    }
    diff = [k for k, (a, b) in checks.items() if a != b]
    if diff:
        raise GenerationError(f"sample set {uri!r} was started with a different {', '.join(diff)}; "
                              "resume with the original settings, or choose another --name")


def check_commits(job: Job, commits: dict[int, ShardCommit], plan: SampleSetPlan) -> dict[int, ShardCommit]:
    """`commits` if every marker belongs to this plan (same fingerprint, slice and weights), else GenerationError."""
    expected = {i: (first, n) for i, first, n in job.shards}
    for i, c in commits.items():
        if (c.set_fingerprint != plan.config.fingerprint or expected.get(i) != (c.shard.first_item, c.shard.num_items)
                or c.teacher_checksum != plan.config.teacher.checksum
                or c.discretizer_checksum != plan.config.discretizer.checksum):
            raise GenerationError(f"commit marker of shard {i} in {job.store.uri!r} does not belong to "
                                  "this set's plan; choose another --name")
    return commits
