"""Build the manifest of a finished set from its plan and commit markers (pure; the writer publishes it)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Mapping

from schemas.manifest import CodeVersion, SampleSetManifest, SampleSetPlan, ShardCommit, Statistics, Timings


class IncompleteSetError(RuntimeError):
    """Some shards of the plan have no commit marker: the set cannot be published yet."""


def build_manifest(plan: SampleSetPlan, commits: Mapping[int, ShardCommit], run_id: str, wall_s: float,
                   code_version: CodeVersion) -> SampleSetManifest:
    missing = [i for i in range(plan.num_shards) if i not in commits]
    if missing:
        raise IncompleteSetError(f"{len(missing)} of {plan.num_shards} shards are not committed (e.g. {missing[:5]})")
    shards = [commits[i].shard for i in range(plan.num_shards)]
    stats = Statistics()
    stats.merge(plan.listing)
    stage_s: dict[str, float] = {}
    for i in range(plan.num_shards):
        stats.merge(commits[i].statistics)
        for stage, seconds in commits[i].stage_s.items():
            stage_s[stage] = stage_s.get(stage, 0.0) + seconds
    now = datetime.now(timezone.utc)
    runs = len({c.run_id for c in commits.values()} | {run_id})
    return SampleSetManifest(
        name=plan.name, created_at=now, config=plan.config, source=plan.source, shards=shards, statistics=stats,
        timings=Timings(started_at=plan.started_at, finished_at=now, runs=runs, wall_s=round(wall_s, 3),
                        stage_s={k: round(v, 3) for k, v in sorted(stage_s.items())}),
        code_version=code_version)
