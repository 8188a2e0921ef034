"""What the student sees of a training image: the online augmentations (crop, flip, RandAugment) as uint8."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from PIL import Image

from dad_core.views import ViewConfig, draw_views
from services.trainer.config import TrainConfig

Transform = Callable[[Image.Image], torch.Tensor]


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
    """The crop box drawn by the rule of stored views (dad_core.views.draw_views: RandomResizedCrop's area and
    aspect ranges), seeded from torch's RNG (seeded per DataLoader worker), resized back to the image's own
    size: images arrive at the run's size."""

    def __init__(self, min_area: float):
        self.config = ViewConfig(count=1, scale=(min_area, 1.0), flip=False)

    def __call__(self, img: Image.Image) -> Image.Image:
        (view,) = draw_views(self.config, int(torch.randint(0, 2**62, ())), "", img.height, img.width)
        box = (view.left, view.top, view.left + view.width, view.top + view.height)
        return img.resize(img.size, Image.BICUBIC, box=box)


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
