"""Any timm classifier as a teacher (the paper's non-CLIP teachers, Tables 5 and 9)."""
from __future__ import annotations

import os
from typing import Sequence

import torch

from dad_core.teachers.base import Teacher


class TimmTeacher(Teacher):
    """A timm model whose output classes are `class_names`, in order."""

    def __init__(self, model: torch.nn.Module, class_names: Sequence[str], image_size: int | None = None):
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        size = image_size or cfg.get("input_size", (3, 224, 224))[-1]
        super().__init__(class_names, image_size=size, mean=cfg.get("mean", (0.485, 0.456, 0.406)),
                         std=cfg.get("std", (0.229, 0.224, 0.225)))
        if model.num_classes != len(class_names):
            raise ValueError(f"timm model has {model.num_classes} outputs but {len(class_names)} class names were given")
        self.model = model
        self.freeze()

    @classmethod
    def from_config(cls, model_name: str, checkpoint: str | None, class_names: Sequence[str],
                    image_size: int | None = None) -> "TimmTeacher":
        from dad_core.students import create_student

        if checkpoint is not None and not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"teacher checkpoint not found: {checkpoint!r}")
        model = create_student(model_name, num_classes=len(class_names), checkpoint_path=checkpoint)
        return cls(model, class_names, image_size)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)
