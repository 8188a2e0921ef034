"""At ImageNet scale a trainer batch must mix classes: the generator shards a seeded permutation of the listing.

A synthetic 1,000-class listing (10 items per class, class-sorted as a listing is) is sharded as the generator
does, written with the real sample-store writer, and read back through the trainer's own loader (row-group
block shuffle, window 16). No models, no Ray: only the order of items is under test.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from schemas.manifest import CodeVersion, ModelInfo, SampleSetConfig, SampleSetPlan, SourceFingerprint, Statistics
from services.sample_store import SampleBatch, SampleSetStore, TeacherVerdicts, build_rows
from services.sample_store.publishing import build_manifest
from services.source.listing import SHARD_ORDER, SourceItem, SourceListing, shard_order
from services.trainer.config import TrainConfig
from services.trainer.data import build_datasets, train_loader

CLASSES, PER_CLASS, SHARD_SIZE, FP = 1000, 10, 256, "e" * 64


def _listing() -> SourceListing:
    ids = [f"c{c:04d}" for c in range(CLASSES)]
    items = [SourceItem(i, f"{ids[i // PER_CLASS]}/{i % PER_CLASS}.jpg", "", i // PER_CLASS)
             for i in range(CLASSES * PER_CLASS)]  # sorted by path, hence by class, like list_source's output
    return SourceListing("file:///src", "imagefolder", ids, ids, items)


def _write_set(root, items: list[SourceItem], order: str) -> str:
    store = SampleSetStore(str(root))
    pixels = np.zeros((SHARD_SIZE, 4, 4, 3), np.uint8)
    for index, first in enumerate(range(0, len(items), SHARD_SIZE)):
        shard = items[first:first + SHARD_SIZE]
        n = len(shard)
        logits = np.zeros((n, 8), np.float16)  # the loader does not look at them; keeps the files small
        verdicts = TeacherVerdicts(logits, np.zeros(n, np.int64), np.ones(n, np.float32), np.ones(n, bool))
        batch = SampleBatch([i.source_id for i in shard], [f"file:///src/{i.source_id}" for i in shard],
                            np.array([i.label for i in shard], np.int64), pixels[:n], pixels[:n], verdicts, verdicts)
        store.commit_shard(index, first, n, build_rows(FP, [batch]), Statistics(seen=n, clean=n, accepted=n), {},
                           FP, "c" * 64, "c" * 64, "run")
    model = ModelInfo(kind="k", name="n", weights=None, checksum="c" * 64)
    names = [f"c{c:04d}" for c in range(CLASSES)]
    config = SampleSetConfig(preset="tiny", preset_config={}, fingerprint=FP, teacher=model, discretizer=model,
                             attack={}, seed=0, image_size=4, shard_size=SHARD_SIZE, batch_size=SHARD_SIZE,
                             class_ids=names, class_names=names, shard_order=order)
    plan = SampleSetPlan(name="set", config=config, num_shards=-(-len(items) // SHARD_SIZE), listing=Statistics(),
                         source=SourceFingerprint(uri="file:///src", format="imagefolder", num_items=len(items),
                                                  num_classes=CLASSES, sha256="0" * 64),
                         started_at=datetime.now(timezone.utc))
    return store.publish(build_manifest(plan, store.committed_shards(), "run", 1.0, CodeVersion()))


def _classes_in_first_batch(manifest: str, tmp_path) -> int:
    cfg = TrainConfig(source="file:///src", samples=manifest, out=str(tmp_path / "run"), objective="dad",
                      preset="tiny", batch_size=256, loader_workers=0, val_fraction=0.0, progress_bar=False)
    data = build_datasets(cfg)
    batch = next(iter(train_loader(cfg, data.train, rank=0, world_size=1)))
    assert len(batch) == 256
    return len(set(batch.labels.tolist()))


@pytest.mark.parametrize("order", ["sorted", SHARD_ORDER])
def test_a_batch_of_256_spans_at_least_150_of_1000_classes_only_with_the_shard_order(tmp_path, order):
    listing = _listing()
    items = shard_order(listing, seed=0).items if order == SHARD_ORDER else listing.items
    classes = _classes_in_first_batch(_write_set(tmp_path / "set", items, order), tmp_path)
    if order == SHARD_ORDER:
        assert classes >= 150, classes
    else:  # what the class-sorted shards gave: a handful of row groups' classes (the issue this fixes)
        assert classes < 150, classes
