"""The teacher interface: pixels in, class logits out (the phi of Sec. 3)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dad_core.images import check_images


class Teacher(nn.Module):
    """A frozen classifier over [0, 1] RGB images.

    The teacher owns its resizing and normalisation so that callers (the attack, the generator, the
    trainer) work in one pixel space, and it stays differentiable w.r.t. its input because the DAD attack
    needs input gradients. Parameters are frozen: the teacher is never trained here.
    """

    def __init__(self, class_names: Sequence[str], image_size: int, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if not class_names:
            raise ValueError("a teacher needs at least one class name")
        self.class_names = list(class_names)
        self.image_size = int(image_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize to the teacher's resolution and normalise (differentiable)."""
        check_images(images)
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bicubic",
                                   align_corners=False, antialias=True)
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Class logits from preprocessed pixels; implemented by each teacher."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [0,1] -> (B, K)
        return self.logits(self.preprocess(images))

    def freeze(self) -> "Teacher":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "Teacher":
        # A teacher is always in eval mode (BatchNorm/Dropout must not change its outputs).
        return super().train(False)
