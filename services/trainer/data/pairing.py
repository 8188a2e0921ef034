"""Which rows train together: each clean x with its Q(x') partner (Eq. 9), the controls' partners, and the
validation hold-out. Pure functions of the reader's index (`services.sample_store`), linear in its rows."""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from schemas import sample_store as ss


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
