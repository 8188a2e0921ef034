"""What travels between the generator's tasks and actors (numpy only: read/write tasks never load torch)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from schemas.perturbation import PerturbationTally


@dataclass
class DecodedBatch:
    """A batch of decoded source images, as a read task hands it to a generator actor."""

    shard: int
    batch: int
    source_ids: list[str]
    source_paths: list[str]
    labels: np.ndarray      # (B,) int64
    images: np.ndarray      # (B, S, S, 3) uint8
    view_images: np.ndarray | None = None  # (B, V, V, 3) uint8: the larger copies views are cut from (--view-image-size)

    def __len__(self) -> int:
        return len(self.source_ids)


@dataclass
class BatchStats:
    """An actor's account of one batch, for progress and the shard's commit marker."""

    shard: int
    batch: int
    items: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    teacher_clean_correct: int = 0
    stage_s: dict[str, float] = field(default_factory=dict)
    perturbation: PerturbationTally | None = None   # the batch's Q(x') diagnostics, tallied
    started_at: float = 0.0      # wall clock (time.time()) around the work: actor utilisation, debugging
    ended_at: float = 0.0


def batch_seed(seed: int, shard: int, batch: int) -> int:
    """Attack seed of one batch: fixed by the set's seed and the batch's place, whatever worker runs it."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{shard}/{batch}".encode()).digest()[:4], "little")
