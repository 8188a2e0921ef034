"""The discretizer interface Q (Sec. 3.3): an image-to-image model through a discrete latent code."""
from __future__ import annotations

import torch
from torch import nn

from dad_core.images import check_images


class Discretizer(nn.Module):
    """Q: [0, 1] RGB images in, [0, 1] RGB images of the same size out, differentiable w.r.t. the input."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        return self.discretize(images)

    def discretize(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def quantize(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(Q(images), (B, N) int64 code indices or None where Q has no codes), in one pass: the generator
        records how many codes the attack changed without encoding twice."""
        return self(images), None

    def train(self, mode: bool = True) -> "Discretizer":
        return super().train(False)  # frozen, like the teacher


class IdentityDiscretizer(Discretizer):
    """Q(x) = x: the paper's "no discretizer" ablation (pixel-space adversarial samples)."""

    def discretize(self, images: torch.Tensor) -> torch.Tensor:
        return images
