"""Training data: each clean x with its accepted Q(x') (Sec. 3.2: train on the original *and* the augmented
samples), read straight from the sample store, sharded across DDP ranks and shuffled by row-group blocks.

With a sample set, clean images come from its clean rows: they are the source images exactly as the teacher
judged them, so the stored logits belong to those pixels. Without one (objectives that need neither
stored logits nor Q(x'): `ce`, `dat`, and `kd`/`dist` with online logits) images come from the source.

Pairing lives here rather than in the reader because it is the trainer's view of the data (the reader
serves rows); it uses only the reader's public `index`.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import fsspec
import numpy as np
import pyarrow.compute as pc
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from schemas import sample_store as ss
from services.sample_store import SampleSetDataset
from services.sample_store.writer import ROW_GROUP_SIZE
from services.source import ReadSpec, SourceItem, list_source, read_items
from services.trainer.config import TrainConfig
from services.trainer.step import Batch

Transform = Callable[[Image.Image], torch.Tensor]


# ----------------------------------------------------------------------------- pure helpers

def pair_rows(kinds: Sequence[str], source_ids: Sequence[str], partner: str = ss.KIND_ADVERSARIAL,
              keep: Sequence[bool] | None = None) -> np.ndarray:
    """(N, 2) int64: for each clean row, (its position, the position of its `partner` row or -1).

    Feed it a reader index opened with accepted_only=True, so a rejected Q(x') is simply absent: those
    examples train on CE + KD only, as Eq. (9) asks (phi(Q(x')) = y must hold for the third term).
    `keep` (per row) drops partner rows that fail another filter (the teacher-correct test on Q(x) rows).
    """
    keep = [True] * len(kinds) if keep is None else keep
    partners = {sid: i for i, (k, sid, ok) in enumerate(zip(kinds, source_ids, keep)) if k == partner and ok}
    return np.array([(i, partners.get(sid, -1)) for i, (k, sid) in enumerate(zip(kinds, source_ids))
                     if k == ss.KIND_CLEAN], dtype=np.int64).reshape(-1, 2)


def partner_rows(adversarial_rows: str) -> tuple[tuple[str, ...], bool, str]:
    """(kinds to read, accepted_only, partner kind) for the trainer's `adversarial_rows` choice.

    accepted: Eq. (9), Q(x') the teacher still gets right; all: every Q(x') (control: no filter); count-matched:
    as many Q(x') per class as `accepted` has, drawn from all of them (`count_matched`; control: no filter at the
    filter's count); discretized: the un-attacked Q(x) under the same teacher-correct filter (control: no
    adversarial step).
    """
    if adversarial_rows == "accepted":
        return ss.TRAINING_KINDS, True, ss.KIND_ADVERSARIAL
    if adversarial_rows in ("all", "count-matched"):
        return ss.TRAINING_KINDS, False, ss.KIND_ADVERSARIAL
    if adversarial_rows == "discretized":
        return (ss.KIND_CLEAN, ss.KIND_DISCRETIZED), False, ss.KIND_DISCRETIZED
    raise ValueError(f"adversarial_rows must be one of accepted, all, count-matched, discretized; "
                     f"got {adversarial_rows!r}")


def count_matched(kinds: Sequence[str], labels: Sequence[int], accepted: Sequence[bool | None],
                  source_ids: Sequence[str], seed: int) -> np.ndarray:
    """Bool mask over rows: per class, a random subset of *all* its Q(x') rows as large as its accepted set.

    The no-filter control at the filter's count, so "the filter hurts" can be told apart from "fewer Q(x'),
    less adversarial loss". The draw ranks each row by a hash of (seed, source id), not an RNG, so every rank
    and every resume picks the same rows; linear in the rows plus a sort per class.
    """
    adversarial = np.array([k == ss.KIND_ADVERSARIAL for k in kinds])
    labels = np.asarray(labels)
    ok = np.array([bool(a) for a in accepted]) & adversarial
    keys = np.array([int.from_bytes(hashlib.sha256(f"{seed}/{sid}".encode()).digest()[:8], "little")
                     for sid in source_ids], dtype=np.uint64)
    keep = np.zeros(len(kinds), dtype=bool)
    for label in np.unique(labels[adversarial]):
        rows = np.flatnonzero(adversarial & (labels == label))
        wanted = int(ok[rows].sum())
        keep[rows[np.argsort(keys[rows], kind="stable")[:wanted]]] = True
    return keep


def holdout_mask(source_ids: Sequence[str], fraction: float) -> np.ndarray:
    """Bool mask of the items held out for validation: the `fraction` with the smallest id hashes.

    A hash of the source id (not an RNG) so that every worker, every resume and every objective holds out
    the same items, and adding items to the source moves few of them.
    """
    n = len(source_ids)
    mask = np.zeros(n, dtype=bool)
    if fraction <= 0 or n < 2:
        return mask
    k = min(n - 1, max(1, round(fraction * n)))
    keys = [hashlib.sha256(s.encode()).digest()[:8] for s in source_ids]
    mask[np.argsort(keys, kind="stable")[:k]] = True
    return mask


def block_shuffle(blocks: np.ndarray, seed: int, epoch: int, rank: int, world_size: int,
                  window: int) -> np.ndarray:
    """The example indices rank `rank` visits in `epoch`: equal counts on every rank (DDP needs that).

    Random access into Parquet costs a whole row group, so instead of a global permutation the order is
    (1) the blocks (row groups) in a random order, (2) padded to a multiple of world_size and split into
    contiguous per-rank slices, so ranks read disjoint blocks, (3) shuffled within windows of `window`
    blocks, which the reader's row-group cache holds at once.
    """
    blocks = np.asarray(blocks)
    n = len(blocks)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    block_ids, inverse = np.unique(blocks, return_inverse=True)
    rng = np.random.default_rng([seed, epoch])
    position = np.empty(len(block_ids), dtype=np.int64)
    position[rng.permutation(len(block_ids))] = np.arange(len(block_ids))
    order = np.argsort(position[inverse], kind="stable")
    per_rank = math.ceil(n / world_size)
    order = np.resize(order, per_rank * world_size)  # pads by repeating from the start
    mine = order[rank * per_rank:(rank + 1) * per_rank].copy()
    chunk = max(1, round(window * n / len(block_ids)))
    local = np.random.default_rng([seed, epoch, rank])
    for start in range(0, len(mine), chunk):
        mine[start:start + chunk] = local.permutation(mine[start:start + chunk])
    return mine


class BlockShuffleSampler(Sampler[int]):
    """`block_shuffle` as a torch Sampler; call `set_epoch` before each epoch, like DistributedSampler."""

    def __init__(self, blocks: np.ndarray, rank: int, world_size: int, seed: int, window: int):
        self.blocks, self.rank, self.world_size = np.asarray(blocks), rank, world_size
        self.seed, self.window, self.epoch = seed, window, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        yield from block_shuffle(self.blocks, self.seed, self.epoch, self.rank, self.world_size,
                                 self.window).tolist()

    def __len__(self) -> int:
        return math.ceil(len(self.blocks) / self.world_size)


# ----------------------------------------------------------------------------- transforms and batches

def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> (3, H, W) uint8: 4x less to move between processes than float."""
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


def build_transform(cfg: TrainConfig, train: bool) -> Transform:
    """View augmentations for training (random-resized crop, flip, RandAugment; Mixup is per batch, in the step)."""
    ops: list[Callable] = []
    if train and cfg.random_resized_crop:
        ops.append(_RandomResizedCrop(cfg.random_resized_crop))
    if train and cfg.hflip:
        ops.append(_RandomHFlip())
    if train and cfg.randaugment:
        from timm.data import rand_augment_transform

        ops.append(rand_augment_transform(cfg.randaugment, {"img_mean": (124, 116, 104)}))
    return _Compose(ops)


class _RandomResizedCrop:
    """torchvision's RandomResizedCrop box (area share in [min_area, 1], aspect 3/4 to 4/3), resized back to
    the image's own size: images arrive at the run's size."""

    def __init__(self, min_area: float):
        self.scale = (min_area, 1.0)

    def __call__(self, img: Image.Image) -> Image.Image:
        from torchvision.transforms import RandomResizedCrop

        top, left, h, w = RandomResizedCrop.get_params(img, self.scale, (3 / 4, 4 / 3))
        return img.resize(img.size, Image.BICUBIC, box=(left, top, left + w, top + h))


class _RandomHFlip:
    def __call__(self, img: Image.Image) -> Image.Image:
        return img.transpose(Image.FLIP_LEFT_RIGHT) if torch.rand(()) < 0.5 else img


class _Compose:
    def __init__(self, ops: list[Callable]):
        self.ops = ops

    def __call__(self, img: Image.Image) -> torch.Tensor:
        for op in self.ops:
            img = op(img)
        return to_uint8_tensor(img)


def collate_examples(examples: list[dict[str, Any]]) -> Batch:
    """Stack examples into a Batch; rows without a Q(x') partner get zero placeholders and has_adv=False."""
    images = torch.stack([e["image"] for e in examples])
    labels = torch.tensor([e["label"] for e in examples], dtype=torch.int64)
    logits = (torch.stack([e["teacher_logits"] for e in examples])
              if all("teacher_logits" in e for e in examples) else None)
    if not any("has_adv" in e for e in examples):
        return Batch(images, labels, logits)
    has_adv = torch.tensor([bool(e["has_adv"]) for e in examples])
    adv = torch.zeros_like(images)
    adv_logits = torch.zeros_like(logits) if logits is not None else None
    for i, e in enumerate(examples):
        if e["has_adv"]:
            adv[i] = e["adv_image"]
            if adv_logits is not None:
                adv_logits[i] = e["adv_teacher_logits"]
    return Batch(images, labels, logits, adv, adv_logits, has_adv)


# ----------------------------------------------------------------------------- datasets

class PairedSampleDataset(Dataset):
    """Example k: clean row pairs[k, 0] of a sample set with its accepted Q(x') row pairs[k, 1] (-1: none)."""

    def __init__(self, rows: SampleSetDataset, pairs: np.ndarray, with_adversarial: bool, with_logits: bool):
        self.rows, self.pairs = rows, pairs
        self.with_adversarial, self.with_logits = with_adversarial, with_logits

    def __len__(self) -> int:
        return len(self.pairs)

    def blocks(self) -> np.ndarray:
        """Row-group block of each example (its clean row's; the partner sits next to it)."""
        shard = self.rows.index["shard"].to_numpy()[self.pairs[:, 0]].astype(np.int64)
        row = self.rows.index["row"].to_numpy()[self.pairs[:, 0]]
        return shard * (1 << 32) + row // ROW_GROUP_SIZE

    def __getitem__(self, k: int) -> dict[str, Any]:
        c, a = (int(v) for v in self.pairs[k])
        clean = self.rows[c]
        ex = {"image": clean["image"], "label": clean["label"]}
        if self.with_logits:
            ex["teacher_logits"] = clean["teacher_logits"]
        if self.with_adversarial:
            ex["has_adv"] = a >= 0
            if a >= 0:
                adv = self.rows[a]
                ex["adv_image"], ex["adv_teacher_logits"] = adv["image"], adv["teacher_logits"]
        return ex


class SourceDataset(Dataset):
    """Clean images straight from the source (services.source does listing and robust decoding).

    An item that fails to decode is replaced by the next one, so a bad file never kills a run nor changes
    the number of steps (which must match across DDP ranks).
    """

    def __init__(self, spec: ReadSpec, items: Sequence[SourceItem], transform: Transform):
        self.spec, self.items, self.transform = spec, list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def blocks(self) -> np.ndarray:
        return np.arange(len(self.items))  # files are independent: every item is its own block

    def __getitem__(self, k: int) -> dict[str, Any]:
        for j in range(k, k + min(16, len(self.items))):
            item = self.items[j % len(self.items)]
            decoded = read_items(self.spec, [item])[0]
            if decoded.pixels is not None:
                return {"image": self.transform(Image.fromarray(decoded.pixels)), "label": item.label}
        raise RuntimeError(f"16 consecutive source items from {item.source_id!r} failed to decode")


# ----------------------------------------------------------------------------- assembly

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
    if cfg.samples:  # stored views (generator --views K): services.trainer.views
        from services.trainer.views import resolve_views, with_views

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
    from services.trainer.views import sampler_for  # (index, epoch) for stored views, plain indices otherwise

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
