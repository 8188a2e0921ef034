"""The generator's augmented views (`--views K`): draw each row's K views, render them with dad_core.views,
run the teacher on exactly those pixels and keep its soft labels (full or top-k), ready to store.

The views of a row are drawn from (the set's seed, the row's sample_id), so they do not depend on which actor,
batch or attempt makes them: a resumed or retried shard stores the same views with the same logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from dad_core.views import INTERPOLATION, ViewConfig, compress_logits, draw_views, render_views, stored_top_k
from schemas import sample_store as ss
from schemas.manifest import ViewsInfo
from services.sample_store.rows import StoredViews


def views_info(count: int, image_size: int, num_classes: int, source_size: int | None, top_k: int | None,
               min_scale: float, adversarial: bool) -> ViewsInfo | None:
    """The manifest's record of how views are made (None for count 0: a set without views)."""
    if count == 0:
        return None
    config = ViewConfig(count, scale=(min_scale, 1.0))
    return ViewsInfo(count=count, scale=list(config.scale), ratio=list(config.ratio), flip=config.flip,
                     interpolation=INTERPOLATION, source_size=source_size or image_size,
                     top_k=stored_top_k(count, num_classes, top_k),
                     kinds=[ss.KIND_CLEAN, ss.KIND_ADVERSARIAL] if adversarial else [ss.KIND_CLEAN])


@dataclass(frozen=True)
class ViewJob:
    """What an actor needs to make the views of its batches (small, shipped once with the actor)."""

    info: ViewsInfo
    set_fingerprint: str     # sample ids are the views' keys
    seed: int                # the set's seed
    image_size: int          # views are rendered at the set's image size

    @property
    def config(self) -> ViewConfig:
        return ViewConfig(self.info.count, tuple(self.info.scale), tuple(self.info.ratio), self.info.flip)


@torch.no_grad()
def teacher_views(teacher: torch.nn.Module, images: np.ndarray, source_ids: Sequence[str], kind: str, job: ViewJob,
                  device: str | torch.device = "cpu", batch_size: int = 64) -> StoredViews:
    """K views of each (H, W, 3) uint8 image (rows of `kind`) and the teacher's logits on each view's pixels."""
    n, k = len(images), job.info.count
    boxes = np.zeros((n, k, 5), np.int32)
    pixels = np.zeros((n * k, job.image_size, job.image_size, 3), np.uint8)    # (B*K, S, S, 3)
    for i, source_id in enumerate(source_ids):
        views = draw_views(job.config, job.seed, ss.sample_id(job.set_fingerprint, source_id, kind),
                           images.shape[1], images.shape[2])
        boxes[i] = [v.as_tuple() for v in views]
        pixels[i * k:(i + 1) * k] = render_views(images[i], views, job.image_size, job.info.interpolation)
    logits = []
    for start in range(0, len(pixels), batch_size):  # the uint8 view / 255, as the trainer feeds the student
        x = torch.from_numpy(pixels[start:start + batch_size]).to(device).permute(0, 3, 1, 2).float().div_(255)
        logits.append(teacher(x).float().cpu())
    values, classes = compress_logits(torch.cat(logits).numpy(), job.info.top_k)
    return StoredViews(boxes, values.reshape(n, k, -1),
                       None if classes is None else classes.reshape(n, k, -1))
