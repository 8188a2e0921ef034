"""Assembly: the train and validation datasets and loaders for a TrainConfig.

With a sample set, clean images come from its clean rows: they are the source images exactly as the teacher
judged them, so the stored logits belong to those pixels. Without one (objectives that need neither
stored logits nor Q(x'): `ce`, `dat`, and `kd`/`dist` with online logits) images come from the source.
"""
from __future__ import annotations

from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow.compute as pc
import torch
from torch.utils.data import DataLoader, Dataset

from schemas import sample_store as ss
from services.sample_store import SampleSetDataset
from services.source import ReadSpec, list_source
from services.trainer.config import TrainConfig
from services.trainer.data.datasets import PairedSampleDataset, SourceDataset, collate_examples
from services.trainer.data.pairing import count_matched, holdout_mask, pair_rows, partner_rows
from services.trainer.data.transforms import Transform, build_transform
from services.trainer.data.views import resolve_views, sampler_for, with_views


@dataclass
class TrainingData:
    train: Dataset
    val: Dataset | None
    class_names: list[str]
    image_size: int
    num_unpaired: int = 0

def build_datasets(cfg: TrainConfig, image_size: int | None = None) -> TrainingData:
    """The train and validation datasets for `cfg` (the same on every rank; the sampler shards them).
    `image_size` (the resolved preset's) applies to images read from the source; a sample set has its own."""
    train_tf, val_tf = build_transform(cfg, train=True), build_transform(cfg, train=False)
    fraction = 0.0 if cfg.val else cfg.val_fraction
    data = (_from_sample_set(cfg, train_tf, val_tf, fraction) if cfg.samples
            else _from_source(cfg, train_tf, val_tf, fraction, image_size or cfg.resolve_preset().image_size))
    if cfg.samples:  # stored views (generator --views K)
        data.train = with_views(data.train, resolve_views(cfg, data.train.rows.manifest))
    if cfg.val:
        listing = list_source(cfg.val, "auto", cfg.class_map, cfg.storage_options)
        data.val = SourceDataset(ReadSpec.for_listing(listing, data.image_size, storage_options=cfg.storage_options),
                                 listing.items, val_tf)
    return data

def _from_sample_set(cfg: TrainConfig, train_tf: Transform, val_tf: Transform, fraction: float) -> TrainingData:
    kinds, accepted_only, partner = partner_rows(cfg.adversarial_rows)
    rows = SampleSetDataset(cfg.samples, kinds=kinds, accepted_only=accepted_only, transform=train_tf,
                            storage_options=cfg.storage_options,
                            cache_row_groups=cfg.shuffle_window)  # holds one shuffle window of row groups
    index = rows.index
    keep = None
    if partner == ss.KIND_DISCRETIZED:  # Q(x) rows carry no verdict: apply Eq. 9's test, phi(Q(x)) = y
        keep = pc.equal(index[ss.COL_TEACHER_PREDICTION], index[ss.COL_LABEL]).to_pylist()
    if cfg.adversarial_rows == "count-matched":
        keep = count_matched(index[ss.COL_KIND].to_pylist(), index[ss.COL_LABEL].to_numpy(),
                             index[ss.COL_ACCEPTED].to_pylist(), index[ss.COL_SOURCE_ID].to_pylist(), cfg.seed)
    pairs = pair_rows(index[ss.COL_KIND].to_pylist(), index[ss.COL_SOURCE_ID].to_pylist(), partner, keep)
    source_ids = rows.index[ss.COL_SOURCE_ID].to_numpy(zero_copy_only=False)[pairs[:, 0]]
    held = holdout_mask(list(source_ids), fraction)
    train = PairedSampleDataset(rows, pairs[~held], cfg.needs_adversarial, cfg.teacher_logits == "stored")
    val = None
    if held.any():  # the held-out items' clean rows, unaugmented (their Q(x') are simply not used)
        val_rows = SampleSetDataset(cfg.samples, kinds=(ss.KIND_CLEAN,), transform=val_tf,
                                    storage_options=cfg.storage_options)
        wanted = set(source_ids[held])
        keep = [i for i, sid in enumerate(val_rows.index[ss.COL_SOURCE_ID].to_pylist()) if sid in wanted]
        val = PairedSampleDataset(val_rows, np.array([(i, -1) for i in keep], np.int64).reshape(-1, 2), False, False)
    config = rows.manifest.config
    return TrainingData(train, val, list(config.class_names), config.image_size, int((pairs[~held, 1] < 0).sum()))

def _from_source(cfg: TrainConfig, train_tf: Transform, val_tf: Transform, fraction: float,
                 image_size: int) -> TrainingData:
    listing = list_source(cfg.source, cfg.source_format, cfg.class_map, cfg.storage_options)
    spec = ReadSpec.for_listing(listing, image_size, storage_options=cfg.storage_options)
    held = holdout_mask([i.source_id for i in listing.items], fraction)
    train_items = [it for it, h in zip(listing.items, held) if not h]
    val_items = [it for it, h in zip(listing.items, held) if h]
    return TrainingData(SourceDataset(spec, train_items, train_tf),
                        SourceDataset(spec, val_items, val_tf) if val_items else None,
                        listing.class_names, image_size)

def _worker_start_method(cfg: TrainConfig, workers: int) -> str | None:
    """fork, unless data is remote: s3fs/gcsfs instances refuse to cross a fork ("not fork-safe"), while
    forkserver workers unpickle fresh ones."""
    urls = [u for u in (cfg.samples, cfg.source, cfg.val) if u]
    remote = any(fsspec.core.split_protocol(u)[0] not in (None, "file", "local") for u in urls)
    return "forkserver" if workers > 0 and remote else None

def train_loader(cfg: TrainConfig, dataset: Dataset, rank: int, world_size: int) -> DataLoader:
    sampler = sampler_for(dataset, rank, world_size, cfg.seed, cfg.shuffle_window)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate_examples,
                      num_workers=cfg.loader_workers, drop_last=len(sampler) > cfg.batch_size,
                      persistent_workers=cfg.loader_workers > 0, pin_memory=cfg.gpus_per_worker > 0,
                      multiprocessing_context=_worker_start_method(cfg, cfg.loader_workers))

def val_loader(cfg: TrainConfig, dataset: Dataset, rank: int, world_size: int) -> DataLoader:
    """Every validation example exactly once over all ranks (no padding, so accuracy is exact)."""
    shard = torch.utils.data.Subset(dataset, range(rank, len(dataset), world_size))
    workers = min(cfg.loader_workers, 1)
    return DataLoader(shard, batch_size=cfg.batch_size, shuffle=False, collate_fn=collate_examples,
                      num_workers=workers, multiprocessing_context=_worker_start_method(cfg, workers))
