"""The generator job on Ray, in four parts a reader can take one at a time:

    job.py        resolve the job before Ray works: preset (once), output, source listing, set identity, shards
    plan.py       the set's plan (_plan.json) and the checks that a resumed run and its commits belong to it
    resources.py  actors, CPUs/GPUs and read-ahead on the connected cluster
    scheduler.py  read tasks -> actor batches (teacher + Q live in the actors) -> write tasks -> manifest

The unit of work is a shard, a fixed slice of the sorted source listing. Shards whose commit marker exists
are skipped, so re-running the same command after any crash (actor, job, node) finishes the set without
regenerating finished shards; a failed batch is retried (Ray restarts a killed actor and re-runs its
calls), and the manifest is built from commit markers only. Reads and writes of other shards overlap the
actors' compute; only decoded images and results travel through the object store, never a model.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from schemas.generation_status import GenerationStatus
from services.generator.config import GeneratorConfig
from services.generator.job import GenerationError, GenerationResult, Job, prepare_job, probe_readable  # noqa: F401
from services.generator.scheduler import ShardScheduler

log = logging.getLogger(__name__)


def run_generation(config: GeneratorConfig, on_progress: Callable[[GenerationStatus], None] | None = None,
                   job: Job | None = None) -> GenerationResult:
    """Generate (or finish) the sample set of `config` on the connected Ray cluster; returns its manifest.

    `on_progress` receives every status update (the same object written to `<set>/_status.json`); `job`
    is `prepare_job(config)` when the caller already ran it.
    """
    import ray

    if not ray.is_initialized():
        raise GenerationError("Ray is not initialised: call ray.init() first (the CLI does this for you)")
    t_start = time.monotonic()
    job = job or prepare_job(config)
    done = job.store.read_manifest()
    if done is not None:
        if done.config.fingerprint != job.set_fingerprint or done.source.sha256 != job.listing.fingerprint().sha256:
            raise GenerationError(f"{job.store.uri!r} holds a different sample set (its config, its teacher's or Q's "
                                  "weight files, or its source differ); choose another --name")
        log.info("sample set %s is already complete", job.store.manifest_uri)
        return GenerationResult(done, job.store.manifest_uri, job.store.uri, resumed_shards=len(done.shards))
    return ShardScheduler(job, on_progress, t_start).run()
