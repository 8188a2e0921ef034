"""The generator's scheduler on Ray: shards flow read -> actor batches -> write, with at most a few shards open.

    read_shard (CPU task)  ->  DADWorker.process per batch (actors keep the models)  ->  write_shard (CPU task)

`ShardScheduler.run` starts the actors, writes or checks the plan, processes the shards not committed yet,
and publishes the manifest built from commit markers. All the moving parts of one run are in `_Flight`:
which shards are open, which batches wait for an actor, and which Ray calls are outstanding.
"""
from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from schemas.generation_status import GenerationStatus
from schemas.manifest import ShardCommit, Statistics
from services.generator.actor import DADWorker
from services.generator.batches import BatchStats
from services.generator.job import GenerationError, GenerationResult, Job
from services.generator.plan import build_plan, check_commits, check_same_plan
from services.generator.progress import ProgressReporter, ProgressTracker
from services.generator.provenance import code_version
from services.generator.resources import plan_resources
from services.generator.tasks import ReadReport, num_batches, read_shard, warm_up_worker, write_shard
from services.sample_store.publishing import build_manifest
from services.source.listing import SourceError, escaped_path
from services.source.reading import ReadSpec
from services.storage import describe_storage_error

log = logging.getLogger(__name__)

INFLIGHT_PER_ACTOR = 2    # queued batches per actor: the next input is ready when the current one ends


@dataclass
class _Shard:
    """One open shard: its read task's outputs, its batches' results, and what they reported."""

    index: int
    first: int
    items: list
    batch_refs: list = field(default_factory=list)     # decoded batches (read task outputs), by batch number
    result_refs: dict = field(default_factory=dict)    # batch number -> the actor's SampleBatch ref
    stats: dict = field(default_factory=dict)          # batch number -> BatchStats, once done
    report: ReadReport | None = None                   # the read task's report, once done

    @property
    def complete(self) -> bool:
        return self.report is not None and len(self.stats) == len(self.batch_refs)


@dataclass
class _Flight:
    """Everything in motion during one run; each outstanding Ray ref is in exactly one of the three maps."""

    todo: deque                                                # (index, first item, items) not opened yet
    open: dict[int, _Shard] = field(default_factory=dict)      # shards being read, generated or written
    queue: deque = field(default_factory=deque)                # (shard, batch) waiting for an actor
    batches: dict[Any, tuple[int, int, int, Any]] = field(default_factory=dict)  # stats ref -> shard, batch, slot, actor
    reads: dict[Any, int] = field(default_factory=dict)        # read-report ref -> shard
    writes: dict[Any, int] = field(default_factory=dict)       # commit ref -> shard
    attempts: dict[tuple[int, int], int] = field(default_factory=dict)  # failed tries per (shard, batch)
    load: list[int] = field(default_factory=list)              # batches queued on each actor slot

    def outstanding(self) -> list:
        return [*self.batches, *self.reads, *self.writes]


class ShardScheduler:
    """Drives reads, actor calls and writes for one run; all Ray calls of the job are here."""

    def __init__(self, job: Job, on_progress: Callable[[GenerationStatus], None] | None, t_start: float):
        import ray

        self.ray, self.job, self.cfg, self.t_start = ray, job, job.config, t_start
        self.run_id = uuid.uuid4().hex[:12]
        self.resources = plan_resources(self.cfg)
        self.spec = ReadSpec.for_listing(job.listing, job.preset.image_size, self.cfg.max_pixels,
                                         self.cfg.storage_options, self.cfg.large_pixels)
        if job.views is not None and job.views.source_size != job.preset.image_size:
            self.spec = dataclasses.replace(self.spec, view_image_size=job.views.source_size)
        self.read_fn = ray.remote(read_shard)
        self.read_options = dict(num_cpus=self.cfg.read_cpus, max_retries=3, retry_exceptions=True)
        self.write_fn = ray.remote(write_shard).options(num_cpus=self.cfg.write_cpus, max_retries=3,
                                                        retry_exceptions=True)
        self.on_progress = on_progress
        self.actors: list = []
        self.replacements = 0

    # -- actors ------------------------------------------------------------------------------------------
    def _new_actor(self, i: int):
        r = self.resources
        cls = self.ray.remote(DADWorker)
        return cls.options(num_cpus=r.cpus_per_actor, num_gpus=r.gpus_per_actor, max_restarts=2, max_task_retries=2,
                           name=f"dad-generator-{self.run_id}-{i}-{self.replacements}").remote(
            self.job.preset, self.job.listing.class_names, r.torch_threads, views=self.job.view_job(),
            requantize_every=self.cfg.requantize_every)

    def _start_actors(self) -> dict[str, str]:
        self.actors = [self._new_actor(i) for i in range(self.resources.actors)]
        warm = self.ray.remote(warm_up_worker).options(num_cpus=self.cfg.read_cpus)
        warming = [warm.remote() for _ in range(min(self.resources.prefetch_shards, 4))]
        try:
            identities = self.ray.get([a.identity.remote() for a in self.actors])
            self.ray.get(warming)
        except self.ray.exceptions.RayError as e:
            raise GenerationError(f"generator actors failed to start: {e}") from e
        sums = {(i["teacher"], i["discretizer"]) for i in identities}
        if len(sums) != 1:
            raise GenerationError(f"actors built different weights (checksums {sums}): non-deterministic init?")
        log.info("%d actor(s) on %s", len(self.actors), sorted({i["device"] for i in identities}))
        return identities[0]

    def _stop_actors(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        self.actors = []

    # -- one run -----------------------------------------------------------------------------------------
    def run(self) -> GenerationResult:
        store, shards = self.job.store, self.job.shards
        old = store.read_plan()
        if old is not None:  # a set started with other settings: refuse before touching its folder
            same_weights = {"teacher": old.config.teacher.checksum, "discretizer": old.config.discretizer.checksum}
            check_same_plan(old, build_plan(self.job, same_weights), store.uri)
        tracker = ProgressTracker(self.job.name, store.uri, len(self.job.listing.items), len(shards))
        self.reporter = ProgressReporter(tracker, store.write_status, self.cfg.progress_bar,
                                         self.cfg.status_interval_s, self.on_progress, log_interval_s=10.0)
        self.reporter.update(force=True, state="starting")
        try:
            self.checksums = self._start_actors()
            plan = build_plan(self.job, self.checksums)
            if old is not None:
                check_same_plan(old, plan, store.uri)
                plan = old
            else:
                store.write_plan(plan)
            committed = check_commits(self.job, store.committed_shards(), plan)
            tracker.resume(sum(c.shard.num_items for c in committed.values()), len(committed))
            t_ready = time.monotonic()
            self._process([s for s in shards if s[0] not in committed], tracker)
            manifest = build_manifest(plan, check_commits(self.job, store.committed_shards(), plan), self.run_id,
                                      time.monotonic() - self.t_start, code_version())
            if manifest.statistics.clean == 0:
                raise SourceError(f"source {self.job.listing.uri!r} has no readable image "
                                  f"(errors: {manifest.statistics.errored.reasons})")
            uri = store.publish(manifest)
        except BaseException as e:
            self.reporter.close("failed", message=f"{type(e).__name__}: {e}")
            raise
        finally:
            self._stop_actors()
        cleanup = store.remove_unreferenced(manifest)
        if cleanup.removed:
            log.info("removed %d leftover file(s) of earlier attempts", len(cleanup.removed))
        if cleanup.foreign:
            log.warning("left %d file(s) in %s that the generator did not write (not deleted): %s",
                        len(cleanup.foreign), store.uri, [escaped_path(f) for f in cleanup.foreign[:10]])
        t_done = time.monotonic()
        status = self.reporter.close("succeeded", manifest_uri=uri)
        return GenerationResult(manifest, uri, store.uri, resumed_shards=len(committed), status=status,
                                startup_s=t_ready - self.t_start, run_s=t_done - t_ready)

    # -- the loop: open shards, feed actors, collect whatever finished, write complete shards ----------------
    def _process(self, pending: list[tuple[int, int, int]], tracker: ProgressTracker) -> None:
        flight = _Flight(deque(pending), load=[0] * len(self.actors))
        max_open = len(self.actors) + self.resources.prefetch_shards
        while flight.todo or flight.open:
            while flight.todo and len(flight.open) < max_open:
                self._open_shard(flight, *flight.todo.popleft())
            self._feed_actors(flight)
            for ref in self._finished(flight):
                self._collect(flight, ref, tracker)
            self.reporter.update()

    def _open_shard(self, flight: _Flight, index: int, first: int, n: int) -> None:
        """Start the shard's read task: one ref per decoded batch, then its ReadReport."""
        shard = _Shard(index, first, self.job.listing.items[first:first + n])
        refs = self.read_fn.options(num_returns=num_batches(n, self.cfg.batch_size) + 1, **self.read_options).remote(
            self.spec, index, shard.items, self.cfg.batch_size)
        shard.batch_refs = list(refs[:-1])
        flight.reads[refs[-1]] = index
        flight.open[index] = shard
        flight.queue.extend((index, b) for b in range(len(shard.batch_refs)))

    def _feed_actors(self, flight: _Flight) -> None:
        """Hand queued batches to the least loaded actors, up to INFLIGHT_PER_ACTOR each."""
        while flight.queue and min(flight.load) < INFLIGHT_PER_ACTOR:
            a = flight.load.index(min(flight.load))
            index, b = flight.queue.popleft()
            actor = self.actors[a]
            result_ref, stats_ref = actor.process.options(num_returns=2).remote(flight.open[index].batch_refs[b])
            flight.open[index].result_refs[b] = result_ref
            flight.batches[stats_ref] = (index, b, a, actor)
            flight.load[a] += 1

    def _finished(self, flight: _Flight) -> list:
        """Refs done now (waits up to the status interval for the first one)."""
        waiting = flight.outstanding()
        if not waiting:  # cannot happen while shards are open; never spin on an empty wait
            raise GenerationError(f"scheduler stalled with shards {sorted(flight.open)} open")
        ready, rest = self.ray.wait(waiting, num_returns=1, timeout=self.cfg.status_interval_s)
        if ready and rest:
            more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return ready

    def _collect(self, flight: _Flight, ref, tracker: ProgressTracker) -> None:
        if ref in flight.writes:
            index = flight.writes.pop(ref)
            ShardCommit.model_validate_json(self._get(ref, f"writing shard {index}"))
            del flight.open[index]
            tracker.add_commit()
            return
        if ref in flight.batches:
            index, b, a, actor = flight.batches.pop(ref)
            flight.load[a] -= 1
            stats = self._batch_stats(flight, ref, index, b, a, actor)
            if stats is not None:
                log.debug("shard %d batch %d on actor %d: %.3f-%.3f", index, b, a, stats.started_at, stats.ended_at)
                flight.open[index].stats[b] = stats
                tracker.add_batch(stats.items, stats.accepted)
        else:
            index = flight.reads.pop(ref)
            report = self._get(ref, f"reading shard {index}")
            flight.open[index].report = report
            tracker.add_read(report.seen, report.errored)
        if flight.open[index].complete:
            flight.writes[self._submit_write(flight.open[index])] = index

    def _get(self, ref, what: str):
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as e:
            raise GenerationError(f"{what} failed: {task_error(e, self.job.store.uri)}") from e

    def _batch_stats(self, flight: _Flight, ref, index: int, b: int, a: int, actor) -> BatchStats | None:
        """The batch's stats, or None after queueing a retry (a dead actor is replaced first)."""
        ray = self.ray
        try:
            return ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
            # Ray already restarted the actor and re-ran its calls max_restarts times; now replace it, once
            # (other calls queued on the same dead actor fail too and must not replace its replacement).
            if self.actors[a] is actor:
                if self.replacements >= 2 * len(self.actors) + 2:
                    raise GenerationError(f"generator actors keep dying ({self.replacements} replaced): {e}") from e
                self.replacements += 1
                log.warning("actor %d died (%s); replacing it and retrying its batches", a, e)
                ray.kill(actor, no_restart=True)
                self.actors[a] = self._new_actor(a)
        except ray.exceptions.RayTaskError as e:
            tries = flight.attempts[(index, b)] = flight.attempts.get((index, b), 0) + 1
            if tries >= self.cfg.max_attempts:
                raise GenerationError(f"batch {b} of shard {index} failed {tries} times: {e}") from e
            log.warning("batch %d of shard %d failed (%s); retrying", b, index, e)
        flight.queue.appendleft((index, b))
        return None

    def _submit_write(self, shard: _Shard):
        """The shard's write task (PNG + Parquet + commit marker), given its batches' results and statistics."""
        stats = Statistics(seen=shard.report.seen, errored=shard.report.errored, converted=shard.report.converted,
                           large=shard.report.large)
        stage_s = {"read": shard.report.read_s, "generate": 0.0, "judge": 0.0}
        for bs in shard.stats.values():
            stats.clean += bs.items
            stats.accepted += bs.accepted
            stats.teacher_clean_correct += bs.teacher_clean_correct
            for reason, n in bs.rejected.items():
                stats.rejected.add(reason, n)
            for stage, seconds in bs.stage_s.items():
                stage_s[stage] = stage_s.get(stage, 0.0) + seconds
            if bs.perturbation is not None:
                stats.merge(Statistics(perturbation=bs.perturbation))
        results = [shard.result_refs[b] for b in range(len(shard.batch_refs))]
        return self.write_fn.remote(self.job.store.uri, self.cfg.storage_options, shard.index, shard.first,
                                    len(shard.items), stats.model_dump_json(), stage_s, self.job.set_fingerprint,
                                    self.checksums, self.run_id, *results,
                                    class_names=list(self.job.listing.class_names))


def task_error(e: BaseException, store_uri: str) -> str:
    """A failed task's own error on one line, with the setting to fix (e.g. a full disk under the store),
    instead of Ray's coloured remote traceback; Ray's own failures (a lost worker) as Ray words them."""
    import ray

    cause = getattr(e, "cause", None)
    if isinstance(e, ray.exceptions.RayTaskError) and isinstance(cause, Exception) \
            and not isinstance(cause, ray.exceptions.RayError):
        return f"{describe_storage_error(store_uri, cause)} (store {store_uri})"
    return str(e)
