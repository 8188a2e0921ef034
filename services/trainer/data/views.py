"""Training on a sample set's stored views (generator `--views K`): augmentation with no teacher in memory.

Epoch e shows each image as its view (e mod N), rebuilt from the stored image by dad_core.views.render_view
(the pixels the teacher scored), with the teacher's stored logits on that view; its partner likewise when
the set stores views of the partner's kind (`--adversarial-views` for Q(x')), else the stored partner as is. The view depends only on the epoch, so a
resumed run shows the same views as an uninterrupted one.

The sampler tags each index with its epoch, because DataLoader workers (persistent ones too) hold their
own copy of the dataset and never see a `set_epoch` on it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from schemas import sample_store as ss
from schemas.manifest import SampleSetManifest
from services.trainer.config import TrainConfig
from services.trainer.data.datasets import PairedSampleDataset
from services.trainer.data.sampling import BlockShuffleSampler


class ViewsError(ValueError):
    """The run asks for views the sample set does not have."""


def resolve_views(cfg: TrainConfig, manifest: SampleSetManifest | None) -> int:
    """How many of the set's views the run cycles through (0: the stored images, unaugmented).

    `views` unset: all the set's views when the teacher's logits are stored (with an online teacher, the run
    augments its own way); an explicit number must not exceed what the set stores.
    """
    stored = manifest.config.views.count if manifest is not None and manifest.config.views is not None else 0
    if cfg.views is None:
        return stored if cfg.teacher_logits == "stored" else 0
    if cfg.views == 0:
        return 0
    if manifest is None:
        raise ViewsError(f"views: {cfg.views} views asked for, but the run reads no sample set (views are stored "
                         "in a sample set made with the generator's --views)")
    if stored == 0:
        raise ViewsError(f"views: sample set {cfg.samples!r} has no stored views (made without the generator's "
                         f"--views, format v{manifest.format_version}), {cfg.views} asked for; regenerate it with "
                         "--views K, or use --views 0")
    if cfg.views > stored:
        raise ViewsError(f"views: sample set {cfg.samples!r} stores {stored} views per image, {cfg.views} asked "
                         f"for; use --views {stored} or fewer")
    return cfg.views


class EpochTaggedSampler(BlockShuffleSampler):
    """BlockShuffleSampler yielding (index, epoch), so the dataset knows which view to show."""

    def __iter__(self):
        epoch = self.epoch
        yield from ((k, epoch) for k in super().__iter__())


class StoredViewsDataset(PairedSampleDataset):
    """PairedSampleDataset whose item (k, epoch) is view (epoch mod num_views) of example k, with its logits."""

    uses_epoch = True

    def __init__(self, paired: PairedSampleDataset, num_views: int):
        super().__init__(paired.rows, paired.pairs, paired.with_adversarial, paired.with_logits)
        self.num_views = num_views
        # Which partners carry views: by their kind (a Q(x) partner, or Q(x') of a set made without
        # --adversarial-views, trains as stored).
        kinds = np.asarray(self.rows.index[ss.COL_KIND].to_pylist() or [""], dtype=object)
        partner = kinds[np.maximum(self.pairs[:, 1], 0)] if len(self.pairs) else np.zeros(0, dtype=object)
        self.partner_views = np.isin(partner, self.rows.manifest.config.views.kinds) & (self.pairs[:, 1] >= 0)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        k, epoch = item if isinstance(item, tuple) else (item, 0)
        v = epoch % self.num_views
        c, a = (int(x) for x in self.pairs[k])
        clean = self.rows.view(c, v)
        ex = {"image": clean["image"], "label": clean["label"], "view": v}
        if self.with_logits:
            ex["teacher_logits"] = clean["teacher_logits"]
        if self.with_adversarial:
            ex["has_adv"] = a >= 0
            if a >= 0:
                adv = self.rows.view(a, v) if self.partner_views[k] else self.rows[a]
                ex["adv_image"], ex["adv_teacher_logits"] = adv["image"], adv["teacher_logits"]
        return ex


def with_views(train: PairedSampleDataset, num_views: int) -> PairedSampleDataset:
    """The training set as stored views (num_views > 0), or unchanged."""
    return StoredViewsDataset(train, num_views) if num_views > 0 else train


def sampler_for(dataset, rank: int, world_size: int, seed: int, window: int) -> BlockShuffleSampler:
    """The block-shuffle sampler, tagging indices with the epoch for datasets that need it (stored views)."""
    cls = EpochTaggedSampler if getattr(dataset, "uses_epoch", False) else BlockShuffleSampler
    return cls(np.asarray(dataset.blocks()), rank, world_size, seed, window)
