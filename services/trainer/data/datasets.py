"""Datasets the trainer reads: paired sample-set rows, or clean images straight from the source; and the
collate that turns their examples into a step's Batch."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from services.sample_store import SampleSetDataset
from services.sample_store.writer import ROW_GROUP_SIZE
from services.source import ReadSpec, SourceItem, read_items
from services.trainer.data.transforms import Transform
from services.trainer.step import Batch


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
