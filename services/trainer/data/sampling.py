"""The order examples are visited in: row-group blocks shuffled per epoch and split across DDP ranks."""
from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler


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
