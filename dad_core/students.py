"""Students: any timm model, built through timm's one factory."""
from __future__ import annotations

import os

import torch
from torch import nn

from dad_core.images import check_images


def create_student(name: str, num_classes: int, pretrained: bool = False, checkpoint_path: str | None = None,
                   **kwargs) -> nn.Module:
    """`timm.create_model` with clear errors for unknown names and bad checkpoints.

    `checkpoint_path` takes a plain state_dict (what the trainer exports) or a timm/trainer checkpoint.
    """
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:10]
        raise ValueError(f"unknown timm model {name!r}" + (f"; similar: {close}" if close else ""))
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if checkpoint_path is not None and not os.path.isfile(checkpoint_path):
        raise FileNotFoundError(f"student checkpoint not found: {checkpoint_path!r}")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes,
                                 checkpoint_path=checkpoint_path or "", **kwargs)
    except RuntimeError as e:  # state_dict key/shape mismatch
        raise ValueError(f"checkpoint {checkpoint_path!r} does not match timm model {name!r} "
                         f"with {num_classes} classes: {e}") from e


class PixelSpaceClassifier(nn.Module):
    """Wrap a timm model so it takes [0, 1] pixels like a Teacher (used for the student's own DAT attack)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        self.model = model
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        return self.model((images - self.mean) / self.std)
