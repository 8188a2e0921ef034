"""`create_teacher`: the one constructor for teachers, keyed by names users know (open_clip, timm)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from dad_core.teachers.base import Teacher

TEACHER_KINDS = ("open_clip", "timm")


@dataclass(frozen=True)
class TeacherConfig:
    """Which teacher to distil from. Paper default: CLIP ViT-L/14 with OpenAI weights (Sec. 4.1)."""

    kind: str = "open_clip"                 # "open_clip" | "timm"
    model: str = "ViT-L-14-quickgelu"       # an open_clip or timm model name (OpenAI weights need QuickGELU)
    pretrained: str | None = "openai"       # open_clip tag or checkpoint path; timm: checkpoint path
    templates: str | tuple[str, ...] = "openai"  # zero-shot prompts (open_clip only)
    image_size: int | None = None           # None: the model's own input size
    init_seed: int = 0                      # random-init weights (no checkpoint) are identical everywhere

    def __post_init__(self):
        if self.kind not in TEACHER_KINDS:
            raise ValueError(f"teacher.kind must be one of {TEACHER_KINDS}, got {self.kind!r}")
        if isinstance(self.templates, list):
            object.__setattr__(self, "templates", tuple(self.templates))


def create_teacher(config: TeacherConfig, class_names: Sequence[str], device: str | torch.device = "cpu") -> Teacher:
    """Build a frozen teacher whose logits are over `class_names`, in that order."""
    if not class_names:
        raise ValueError("create_teacher needs the class names the teacher must score")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.init_seed)  # random-init teachers (tests, benchmarks) must agree across actors
        if config.kind == "open_clip":
            from dad_core.teachers.openclip import OpenCLIPTeacher

            teacher = OpenCLIPTeacher.from_config(config.model, config.pretrained, class_names, config.templates)
        else:
            from dad_core.teachers.timm_teacher import TimmTeacher

            teacher = TimmTeacher.from_config(config.model, config.pretrained, class_names, config.image_size)
    return teacher.to(device)
