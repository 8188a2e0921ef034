"""The generator's CPU tasks on Ray workers: read (fetch + decode + resize) and write (PNG + Parquet + commit).

Plain functions that `scheduler.py` wraps with `ray.remote`, so each runs in-process exactly as Ray runs it.
They import neither torch nor the models: a fresh Ray worker starts them in a fraction of a second.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from schemas.manifest import ReasonCounts, Statistics
from services.generator.batches import DecodedBatch
from services.sample_store.rows import SampleBatch, build_rows
from services.sample_store.writer import SampleSetStore
from services.source.listing import SourceItem
from services.source.reading import ReadSpec, read_items


@dataclass
class ReadReport:
    """What a read task found in its shard: decode failures and conversions, with reasons."""

    shard: int
    seen: int = 0
    errored: ReasonCounts = field(default_factory=ReasonCounts)
    converted: ReasonCounts = field(default_factory=ReasonCounts)
    large: ReasonCounts = field(default_factory=ReasonCounts)
    read_s: float = 0.0


def warm_up_worker(seconds: float = 0.5) -> int:
    """Run while the actors build their models, so CPU workers exist (with this module imported) before the
    first shard is read; otherwise the first read pays for a worker process start."""
    time.sleep(seconds)
    return os.getpid()


def num_batches(num_items: int, batch_size: int) -> int:
    return max(1, math.ceil(num_items / batch_size))


def read_shard(spec: ReadSpec, shard: int, items: Sequence[SourceItem], batch_size: int) -> tuple:
    """Fetch, decode and resize a shard's items; returns one DecodedBatch per batch slot, then a ReadReport.

    Batches are fixed slices of the shard's items (failed items just leave a batch shorter), so a batch's
    content and attack seed never depend on which worker or attempt produced it.
    """
    t0 = time.perf_counter()
    decoded = read_items(spec, items)
    report = ReadReport(shard, seen=len(items))
    batches = []
    image_shape = (spec.image_size, spec.image_size, 3)
    for b in range(num_batches(len(items), batch_size)):
        keep = []
        for pos in range(b * batch_size, min(len(items), (b + 1) * batch_size)):
            result, item = decoded[pos], items[pos]
            if result.error is not None:
                report.errored.add(result.error, example=item.source_id)
                continue
            if result.converted_from is not None:
                report.converted.add(result.converted_from, example=item.source_id)
            if result.large:
                report.large.add(f"over_{spec.large_pixels}_pixels", example=item.source_id)
            keep.append(pos)
        batches.append(DecodedBatch(
            shard=shard, batch=b,
            source_ids=[items[p].source_id for p in keep],
            source_paths=[f"{spec.base_uri}/{items[p].source_id}" for p in keep],
            labels=np.array([items[p].label for p in keep], dtype=np.int64),
            images=np.stack([decoded[p].pixels for p in keep]) if keep else np.zeros((0, *image_shape), np.uint8),
            view_images=_view_images(spec, [decoded[p] for p in keep])))
    report.read_s = time.perf_counter() - t0
    return (*batches, report)


def _view_images(spec: ReadSpec, decoded: list) -> np.ndarray | None:
    """(B, V, V, 3) uint8 larger copies for cutting views, when the set stores them."""
    if not spec.view_image_size:
        return None
    v = spec.view_image_size
    return np.stack([d.view_pixels for d in decoded]) if decoded else np.zeros((0, v, v, 3), np.uint8)


def write_shard(set_uri: str, storage_options: dict[str, Any], shard: int, first_item: int, num_items: int,
                statistics_json: str, stage_s: dict[str, float], set_fingerprint: str,
                checksums: dict[str, str], run_id: str, *samples: SampleBatch | None,
                class_names: Sequence[str] | None = None) -> str:
    """Encode a shard's rows (PNG + Parquet), write the file, then commit it; returns the commit as JSON."""
    t0 = time.perf_counter()
    table = build_rows(set_fingerprint, [s for s in samples if s is not None], class_names=class_names)
    stage_s = {**stage_s, "encode": time.perf_counter() - t0}
    commit = SampleSetStore(set_uri, storage_options).commit_shard(
        shard, first_item, num_items, table, Statistics.model_validate_json(statistics_json), stage_s,
        set_fingerprint, checksums["teacher"], checksums["discretizer"], run_id)
    return commit.model_dump_json()
