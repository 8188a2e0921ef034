"""A generator job, resolved before Ray does any work: the preset (once), the output, the source listing, the
set's identity and its shards. Every input error surfaces here, as exit status 2 of the CLI.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from schemas.generation_status import GenerationStatus
from schemas.manifest import SampleSetManifest, ViewsInfo
from services.generator.config import GeneratorConfig, default_set_name, generation_fingerprint
from services.jobs.presets import resolve_preset
from services.sample_store.writer import SampleSetStore
from services.generator.views import ViewJob, views_info
from services.generator.weights import weights_digests
from services.source.listing import SourceError, SourceListing, list_source, shard_order
from services.source.reading import ReadSpec, read_items
from services.storage import check_writable, join, open_filesystem

log = logging.getLogger(__name__)

MAX_PROBES = 256          # items tried before "no readable image" is declared


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
    shards: list[tuple[int, int, int]]       # (index, first item, number of items) of the shard-ordered listing
    weights: dict[str, str | None] = field(default_factory=dict)  # sha256 of the weight files (set identity)
    views: ViewsInfo | None = None           # how the set's augmented views are made; None: no views

    def view_job(self) -> ViewJob | None:
        """What the actors need to make the views (None: the set has none)."""
        if self.views is None:
            return None
        return ViewJob(self.views, self.set_fingerprint, self.preset.attack.seed, self.preset.image_size)

    @property
    def name(self) -> str:
        return self.store.path.rsplit("/", 1)[-1]


def prepare_job(config: GeneratorConfig) -> Job:
    """Validate everything that can fail before Ray does any work: preset, output, source, a readable image."""
    preset = resolve_preset(config.preset, config.overrides)
    out_fs, out_path = open_filesystem(config.out, config.storage_options)
    check_writable(out_fs, out_path)
    listing = list_source(config.source, config.source_format, config.class_map, config.storage_options)
    listing = shard_order(listing, preset.attack.seed)  # shards mix classes; same seed, same shards
    if config.limit is not None:  # a seeded random subset: every class in proportion, not the first classes only
        listing = dataclasses.replace(listing, items=listing.items[: config.limit])
    weights = weights_digests(preset)
    if config.view_image_size is not None and config.view_image_size < preset.image_size:
        raise GenerationError(f"view_image_size {config.view_image_size} is smaller than the preset's image size "
                              f"{preset.image_size}: views are cut from an image at least that large")
    views = views_info(config.views, preset.image_size, len(listing.class_names), config.view_image_size,
                       config.view_top_k, config.view_min_scale, config.adversarial_views)
    fingerprint = generation_fingerprint(preset, listing.class_names, weights, views)
    name = config.name or default_set_name(preset.name, config.source, fingerprint, listing.fingerprint().sha256)
    store = SampleSetStore(join(config.out.rstrip("/"), name), config.storage_options)
    n = len(listing.items)
    shards = [(i, start, min(config.shard_size, n - start)) for i, start in enumerate(range(0, n, config.shard_size))]
    job = Job(config, preset, listing, fingerprint, store, shards, weights, views)
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
