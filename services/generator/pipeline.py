"""The generator job on Ray: list -> read tasks -> actor pool (teacher + Q) -> write tasks -> manifest.

    read_shard (CPU tasks, ahead of the actors)  ->  DADWorker.process (one call per batch; models live in
    the actor)  ->  write_shard (PNG + Parquet + commit marker)  ->  manifest, written last

The unit of work is a shard, a fixed slice of the sorted source listing. Shards whose commit marker exists
are skipped, so re-running the same command after any crash (actor, job, node) finishes the set without
regenerating finished shards; a failed batch is retried (Ray restarts a killed actor and re-runs its
calls), and the manifest is built from commit markers only. Reads and writes of other shards overlap the
actors' compute; only decoded images and results travel through the object store, never a model.
"""
from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from schemas.generation_status import GenerationStatus
from schemas.manifest import (
    ModelInfo, SampleSetConfig, SampleSetManifest, SampleSetPlan, ShardCommit, Statistics,
)
from services.generator.config import GeneratorConfig, default_set_name, generation_fingerprint
from services.jobs.presets import resolve_preset
from services.generator.progress import ProgressReporter, ProgressTracker
from services.generator.provenance import code_version
from services.generator.actor import DADWorker
from services.generator.batches import BatchStats
from services.generator.tasks import ReadReport, num_batches, read_shard, warm_up_worker, write_shard
from services.sample_store.publishing import build_manifest
from services.sample_store.writer import SampleSetStore
from services.source.listing import SourceError, SourceListing, list_source
from services.source.reading import ReadSpec, read_items
from services.storage import check_writable, join, open_filesystem

log = logging.getLogger(__name__)

MAX_PROBES = 256          # items tried before "no readable image" is declared
INFLIGHT_PER_ACTOR = 2    # queued batches per actor: the next input is ready when the current one ends


class GenerationError(RuntimeError):
    """The job cannot finish (bad config, repeated failures); committed shards stay for a re-run."""


@dataclass
class GenerationResult:
    manifest: SampleSetManifest
    manifest_uri: str
    set_uri: str
    resumed_shards: int          # shards committed by earlier runs
    status: GenerationStatus | None = None
    startup_s: float = 0.0       # listing, probing, actors built and checked
    run_s: float = 0.0           # actors ready -> manifest published (what the benchmark compares)


@dataclass
class Job:
    """A resolved job: what to read, where the set lives, its identity."""

    config: GeneratorConfig
    preset: Any                              # dad_core.Preset, resolved once for the job
    listing: SourceListing
    set_fingerprint: str
    store: SampleSetStore
    shards: list[tuple[int, int, int]]       # (index, first item, number of items)

    @property
    def name(self) -> str:
        return self.store.path.rsplit("/", 1)[-1]


def prepare_job(config: GeneratorConfig) -> Job:
    """Validate everything that can fail before Ray does any work: preset, output, source, a readable image."""
    preset = resolve_preset(config.preset, config.overrides)
    out_fs, out_path = open_filesystem(config.out, config.storage_options)
    check_writable(out_fs, out_path)
    listing = list_source(config.source, config.source_format, config.class_map, config.storage_options)
    if config.limit is not None:
        listing = dataclasses.replace(listing, items=listing.items[: config.limit])
    fingerprint = generation_fingerprint(preset, listing.class_names)
    name = config.name or default_set_name(preset.name, config.source, fingerprint, listing.fingerprint().sha256)
    store = SampleSetStore(join(config.out.rstrip("/"), name), config.storage_options)
    n = len(listing.items)
    shards = [(i, start, min(config.shard_size, n - start)) for i, start in enumerate(range(0, n, config.shard_size))]
    job = Job(config, preset, listing, fingerprint, store, shards)
    probe_readable(job)
    return job


def probe_readable(job: Job) -> None:
    """Raise SourceError unless some item decodes (tries evenly spaced items, up to MAX_PROBES)."""
    items = job.listing.items
    step = max(1, len(items) // MAX_PROBES)
    order = items[::step][:MAX_PROBES]
    spec = ReadSpec.for_listing(job.listing, job.preset.image_size, job.config.max_pixels, job.config.storage_options)
    reasons: dict[str, int] = {}
    for start in range(0, len(order), 16):
        for result in read_items(spec, order[start:start + 16]):
            if result.error is None:
                return
            reasons[result.error] = reasons.get(result.error, 0) + 1
    raise SourceError(f"source {job.listing.uri!r} has no readable image: {len(order)} of {len(items)} items "
                      f"tried, none decoded ({reasons})")


def _plan(job: Job, checksums: dict[str, str]) -> SampleSetPlan:
    p, cfg = job.preset, job.config
    config = SampleSetConfig(
        preset=p.name, preset_config=p.to_dict(), fingerprint=job.set_fingerprint,
        teacher=ModelInfo(kind=p.teacher.kind, name=p.teacher.model, weights=p.teacher.pretrained,
                          checksum=checksums["teacher"]),
        discretizer=ModelInfo(kind=p.discretizer.kind, name=p.discretizer.config, weights=p.discretizer.checkpoint,
                              checksum=checksums["discretizer"]),
        attack=dataclasses.asdict(p.attack), seed=p.attack.seed, image_size=p.image_size,
        shard_size=cfg.shard_size, batch_size=cfg.batch_size,
        class_ids=job.listing.class_ids, class_names=job.listing.class_names)
    return SampleSetPlan(name=job.name, config=config, source=job.listing.fingerprint(), num_shards=len(job.shards),
                         listing=Statistics(skipped=job.listing.skipped), started_at=datetime.now(timezone.utc))


def _check_same_plan(old: SampleSetPlan, new: SampleSetPlan, uri: str) -> None:
    checks = {
        "generation config": (old.config.fingerprint, new.config.fingerprint),
        "source": (old.source.sha256, new.source.sha256),
        "shard size": (old.config.shard_size, new.config.shard_size),
        "batch size": (old.config.batch_size, new.config.batch_size),
        "teacher weights": (old.config.teacher.checksum, new.config.teacher.checksum),
        "discretizer weights": (old.config.discretizer.checksum, new.config.discretizer.checksum),
    }
    diff = [k for k, (a, b) in checks.items() if a != b]
    if diff:
        raise GenerationError(f"sample set {uri!r} was started with a different {', '.join(diff)}; "
                              "resume with the original settings, or choose another --name")


def _resources(config: GeneratorConfig) -> tuple[int, float, float, int, int]:
    """(actors, GPUs per actor, CPUs per actor, torch threads, shards to read ahead), checked against the cluster.

    Reads (JPEG decode) are what starves a GPU actor, so the read-ahead grows with the CPUs the actors leave.
    """
    import ray

    total = ray.cluster_resources()
    gpus, cpus = total.get("GPU", 0.0), total.get("CPU", 0.0)
    gpa = config.gpus_per_actor if config.gpus_per_actor is not None else (1.0 if gpus else 0.0)
    n = config.num_actors or (max(1, int(gpus // gpa)) if gpa else 1)
    if gpa and n * gpa > gpus:
        raise GenerationError(f"{n} actors x {gpa} GPUs need {n * gpa:g} GPUs; the cluster has {gpus:g}")
    need = n * config.cpus_per_actor + max(config.read_cpus, config.write_cpus)
    if need > cpus:
        raise GenerationError(f"{n} actors x {config.cpus_per_actor:g} CPUs leave no CPU for read/write tasks "
                              f"(cluster has {cpus:g} CPUs): lower --cpus-per-actor or --num-actors")
    threads = config.torch_threads or max(1, round(config.cpus_per_actor))
    spare = cpus - n * config.cpus_per_actor
    prefetch = config.prefetch_shards
    if prefetch is None:
        prefetch = max(2, int(spare / max(config.read_cpus, 0.25) / 2))
    return n, gpa, config.cpus_per_actor, threads, prefetch


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
            raise GenerationError(f"{job.store.uri!r} holds a different sample set; choose another --name")
        log.info("sample set %s is already complete", job.store.manifest_uri)
        return GenerationResult(done, job.store.manifest_uri, job.store.uri, resumed_shards=len(done.shards))
    return _Scheduler(job, on_progress, t_start).run()


@dataclass
class _Shard:
    index: int
    first: int
    items: list
    batch_refs: list = field(default_factory=list)
    result_refs: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    report: ReadReport | None = None


class _Scheduler:
    """Drives reads, actor calls and writes for one run; all Ray calls of the job are here."""

    def __init__(self, job: Job, on_progress, t_start: float):
        import ray

        self.ray, self.job, self.cfg, self.t_start = ray, job, job.config, t_start
        self.run_id = uuid.uuid4().hex[:12]
        self.n_actors, self.gpa, self.cpa, self.threads, self.prefetch = _resources(self.cfg)
        self.spec = ReadSpec.for_listing(job.listing, job.preset.image_size, self.cfg.max_pixels,
                                         self.cfg.storage_options)
        self.read_fn = ray.remote(read_shard)
        self.read_options = dict(num_cpus=self.cfg.read_cpus, max_retries=3, retry_exceptions=True)
        self.write_fn = ray.remote(write_shard).options(num_cpus=self.cfg.write_cpus, max_retries=3,
                                                        retry_exceptions=True)
        self.on_progress = on_progress
        self.actors: list = []
        self.replacements = 0

    # -- actors ------------------------------------------------------------------------------------------
    def _new_actor(self, i: int):
        cls = self.ray.remote(DADWorker)
        return cls.options(num_cpus=self.cpa, num_gpus=self.gpa, max_restarts=2, max_task_retries=2,
                           name=f"dad-generator-{self.run_id}-{i}-{self.replacements}").remote(
            self.job.preset, self.job.listing.class_names, self.threads)

    def _start_actors(self) -> dict[str, str]:
        self.actors = [self._new_actor(i) for i in range(self.n_actors)]
        warm = self.ray.remote(warm_up_worker).options(num_cpus=self.cfg.read_cpus)
        warming = [warm.remote() for _ in range(min(self.prefetch, 4))]
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

    # -- main loop ---------------------------------------------------------------------------------------
    def run(self) -> GenerationResult:
        store, shards = self.job.store, self.job.shards
        old = store.read_plan()
        if old is not None:  # a set started with other settings: refuse before touching its folder
            same_weights = {"teacher": old.config.teacher.checksum, "discretizer": old.config.discretizer.checksum}
            _check_same_plan(old, _plan(self.job, same_weights), store.uri)
        tracker = ProgressTracker(self.job.name, store.uri, len(self.job.listing.items), len(shards))
        self.reporter = ProgressReporter(tracker, store.write_status, self.cfg.progress_bar,
                                         self.cfg.status_interval_s, self.on_progress, log_interval_s=10.0)
        self.reporter.update(force=True, state="starting")
        try:
            self.checksums = self._start_actors()
            plan = _plan(self.job, self.checksums)
            if old is not None:
                _check_same_plan(old, plan, store.uri)
                plan = old
            else:
                store.write_plan(plan)
            committed = self._valid_commits(store.committed_shards(), plan)
            tracker.resume(sum(c.shard.num_items for c in committed.values()), len(committed))
            t_ready = time.monotonic()
            self._process([s for s in shards if s[0] not in committed], tracker)
            manifest = build_manifest(plan, self._valid_commits(store.committed_shards(), plan), self.run_id,
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
        removed = store.remove_unreferenced(manifest)
        if removed:
            log.info("removed %d unreferenced shard file(s) of earlier attempts", removed)
        t_done = time.monotonic()
        status = self.reporter.close("succeeded", manifest_uri=uri)
        return GenerationResult(manifest, uri, store.uri, resumed_shards=len(committed), status=status,
                                startup_s=t_ready - self.t_start, run_s=t_done - t_ready)

    def _valid_commits(self, commits: dict[int, ShardCommit], plan: SampleSetPlan) -> dict[int, ShardCommit]:
        expected = {i: (first, n) for i, first, n in self.job.shards}
        for i, c in commits.items():
            if (c.set_fingerprint != plan.config.fingerprint or expected.get(i) != (c.shard.first_item, c.shard.num_items)
                    or c.teacher_checksum != plan.config.teacher.checksum
                    or c.discretizer_checksum != plan.config.discretizer.checksum):
                raise GenerationError(f"commit marker of shard {i} in {self.job.store.uri!r} does not belong to "
                                      "this set's plan; choose another --name")
        return commits

    def _process(self, pending: list[tuple[int, int, int]], tracker: ProgressTracker) -> None:
        ray, cfg = self.ray, self.cfg
        items = self.job.listing.items
        todo = deque(pending)
        open_shards: dict[int, _Shard] = {}
        batch_queue: deque[tuple[int, int]] = deque()
        inflight: dict[Any, tuple[int, int, int, Any]] = {}    # stats ref -> (shard, batch, actor slot, handle)
        reports: dict[Any, int] = {}
        writes: dict[Any, int] = {}
        attempts: dict[tuple[int, int], int] = {}
        load = [0] * len(self.actors)
        max_open = len(self.actors) + self.prefetch

        while todo or open_shards:
            while todo and len(open_shards) < max_open:
                index, first, n = todo.popleft()
                shard = _Shard(index, first, items[first:first + n])
                returns = num_batches(n, cfg.batch_size) + 1  # one ref per batch, then the ReadReport
                refs = self.read_fn.options(num_returns=returns, **self.read_options).remote(
                    self.spec, index, shard.items, cfg.batch_size)
                shard.batch_refs = list(refs[:-1])
                reports[refs[-1]] = index
                open_shards[index] = shard
                batch_queue.extend((index, b) for b in range(len(shard.batch_refs)))
            while batch_queue and min(load) < INFLIGHT_PER_ACTOR:
                a = load.index(min(load))
                index, b = batch_queue.popleft()
                actor = self.actors[a]
                result_ref, stats_ref = actor.process.options(num_returns=2).remote(open_shards[index].batch_refs[b])
                open_shards[index].result_refs[b] = result_ref
                inflight[stats_ref] = (index, b, a, actor)
                load[a] += 1
            waiting = [*inflight, *reports, *writes]
            if not waiting:  # cannot happen while shards are open; never spin on an empty wait
                raise GenerationError(f"scheduler stalled with shards {sorted(open_shards)} open")
            ready, rest = ray.wait(waiting, num_returns=1, timeout=cfg.status_interval_s)
            if ready and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                ready += more
            for ref in ready:
                if ref in inflight:
                    index, b, a, actor = inflight.pop(ref)
                    load[a] -= 1
                    stats = self._batch_stats(ref, index, b, a, actor, attempts, batch_queue)
                    if stats is not None:
                        log.debug("shard %d batch %d on actor %d: %.3f-%.3f", index, b, a, stats.started_at,
                                  stats.ended_at)
                        open_shards[index].stats[b] = stats
                        tracker.add_batch(stats.items, stats.accepted)
                elif ref in reports:
                    index = reports.pop(ref)
                    report = self._get(ref, f"reading shard {index}")
                    open_shards[index].report = report
                    tracker.add_read(report.seen, report.errored)
                else:
                    index = writes.pop(ref)
                    ShardCommit.model_validate_json(self._get(ref, f"writing shard {index}"))
                    del open_shards[index]
                    tracker.add_commit()
                    continue
                shard = open_shards[index]
                if shard.report is not None and len(shard.stats) == len(shard.batch_refs):
                    writes[self._submit_write(shard)] = index
            self.reporter.update()

    def _get(self, ref, what: str):
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as e:
            raise GenerationError(f"{what} failed: {e}") from e

    def _batch_stats(self, ref, index: int, b: int, a: int, actor, attempts: dict, batch_queue: deque
                     ) -> BatchStats | None:
        """The batch's stats, or None after scheduling a retry (a dead actor is replaced first)."""
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
            attempts[(index, b)] = attempts.get((index, b), 0) + 1
            if attempts[(index, b)] >= self.cfg.max_attempts:
                raise GenerationError(f"batch {b} of shard {index} failed {attempts[(index, b)]} times: {e}") from e
            log.warning("batch %d of shard %d failed (%s); retrying", b, index, e)
        batch_queue.appendleft((index, b))
        return None

    def _submit_write(self, shard: _Shard):
        stats = Statistics(seen=shard.report.seen, errored=shard.report.errored, converted=shard.report.converted)
        stage_s = {"read": shard.report.read_s, "generate": 0.0, "judge": 0.0}
        for bs in shard.stats.values():
            stats.clean += bs.items
            stats.accepted += bs.accepted
            stats.teacher_clean_correct += bs.teacher_clean_correct
            for reason, n in bs.rejected.items():
                stats.rejected.add(reason, n)
            for stage, seconds in bs.stage_s.items():
                stage_s[stage] = stage_s.get(stage, 0.0) + seconds
        results = [shard.result_refs[b] for b in range(len(shard.batch_refs))]
        return self.write_fn.remote(self.job.store.uri, self.cfg.storage_options, shard.index, shard.first,
                                    len(shard.items), stats.model_dump_json(), stage_s, self.job.set_fingerprint,
                                    self.checksums, self.run_id, *results)
