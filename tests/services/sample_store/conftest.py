"""Synthetic sample sets for the store's own tests: written with the real writer, no models, no Ray."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from schemas.manifest import (
    CodeVersion, ModelInfo, SampleSetConfig, SampleSetPlan, SourceFingerprint, Statistics, ViewsInfo,
)
from services.sample_store import SampleBatch, SampleSetStore, StoredViews, TeacherVerdicts, build_rows
from services.sample_store.publishing import build_manifest

FP = "f" * 64


def sample_batch(n: int = 3, k: int = 5, offset: int = 0, size: int = 8) -> SampleBatch:
    rng = np.random.default_rng(offset)

    def verdicts(accepted):
        logits = rng.normal(size=(n, k)).astype(np.float16)
        return TeacherVerdicts(logits, logits.argmax(1).astype(np.int64), np.full(n, 0.5, np.float32), accepted)

    return SampleBatch(
        source_ids=[f"c/{offset + i}.jpg" for i in range(n)], source_paths=[f"file:///src/c/{offset + i}.jpg" for i in range(n)],
        labels=np.arange(n, dtype=np.int64) % k,
        clean=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        adversarial=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        clean_verdicts=verdicts(np.ones(n, bool)), adversarial_verdicts=verdicts(np.arange(n) % 2 == 0))


def with_views(batch: SampleBatch, k: int = 2, top_k: int | None = None) -> SampleBatch:
    """`batch` with k random views per clean and Q(x') row (boxes inside the 8 x 8 images, random logits)."""
    rng = np.random.default_rng(k)
    n = len(batch)

    def views():
        boxes = np.stack([np.array([[v % 3, v % 2, 6, 5, v % 2] for v in range(k)], np.int32)] * n)  # (n, k, 5)
        if top_k is None:
            return StoredViews(boxes, rng.normal(size=(n, k, 5)).astype(np.float16))
        classes = np.stack([rng.permutation(5)[:top_k] for _ in range(n * k)]).reshape(n, k, top_k).astype(np.int32)
        return StoredViews(boxes, rng.normal(size=(n, k, top_k + 1)).astype(np.float16), classes)

    batch.clean_views, batch.adversarial_views = views(), views()
    return batch


def views_info(k: int = 2, top_k: int | None = None) -> ViewsInfo:
    return ViewsInfo(count=k, scale=[0.08, 1.0], ratio=[0.75, 4 / 3], flip=True, interpolation="bilinear",
                     source_size=8, top_k=top_k, kinds=["clean", "adversarial"])


def plan(num_shards: int, views: ViewsInfo | None = None) -> SampleSetPlan:
    model = ModelInfo(kind="k", name="n", weights=None, checksum="c" * 64)
    config = SampleSetConfig(preset="tiny", preset_config={}, fingerprint=FP, teacher=model, discretizer=model,
                             attack={}, seed=0, image_size=8, shard_size=3, batch_size=3, class_ids=list("abcde"),
                             class_names=list("abcde"), views=views)
    return SampleSetPlan(name="set", config=config, num_shards=num_shards, listing=Statistics(),
                         source=SourceFingerprint(uri="file:///src", format="imagefolder", num_items=3 * num_shards,
                                                  num_classes=5, sha256="0" * 64),
                         started_at=datetime.now(timezone.utc))


def commit(store: SampleSetStore, index: int, batch: SampleBatch, run_id: str = "run1"):
    stats = Statistics(seen=len(batch), clean=len(batch), accepted=int(batch.adversarial_verdicts.accepted.sum()))
    return store.commit_shard(index, 3 * index, len(batch), build_rows(FP, [batch]), stats, {"generate": 1.0}, FP,
                              "c" * 64, "c" * 64, run_id)


@pytest.fixture(scope="session")
def synthetic() -> SimpleNamespace:
    """The helpers above, as a fixture (test modules must not import conftest by name)."""
    return SimpleNamespace(FP=FP, sample_batch=sample_batch, plan=plan, commit=commit, with_views=with_views,
                           views_info=views_info)


@pytest.fixture
def synthetic_set(tmp_path) -> Path:
    """A published 2-shard set of 6 items (12 rows; adversarial rows 0 and 2 of each shard accepted)."""
    store = SampleSetStore(str(tmp_path / "set"))
    commit(store, 0, sample_batch())
    commit(store, 1, sample_batch(offset=3))
    store.publish(build_manifest(plan(2), store.committed_shards(), "run1", 1.0, CodeVersion()))
    return tmp_path / "set"


@pytest.fixture
def views_set(tmp_path) -> Path:
    """Like synthetic_set, with 2 views (full logits) on every clean and Q(x') row."""
    store = SampleSetStore(str(tmp_path / "views-set"))
    commit(store, 0, with_views(sample_batch()))
    commit(store, 1, with_views(sample_batch(offset=3)))
    store.publish(build_manifest(plan(2, views_info()), store.committed_shards(), "run1", 1.0, CodeVersion()))
    return tmp_path / "views-set"
