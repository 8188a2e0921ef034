"""`create_teacher`: the one constructor for teachers, keyed by names users know (open_clip, timm).

Kinds are registered like objectives (`register_teacher`), so a user's own teacher is one decorated function,
and `--help` lists what is there (`list_teachers`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from dad_core.registry import Registry
from dad_core.teachers.base import Teacher

TeacherBuilder = Callable[["TeacherConfig", Sequence[str]], Teacher]
TEACHERS: Registry[TeacherBuilder] = Registry("teacher.kind")
register_teacher = TEACHERS.register  # @register_teacher("name"): fn(config, class_names) -> Teacher
list_teachers = TEACHERS.names


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
        TEACHERS.check(self.kind)
        if isinstance(self.templates, list):
            object.__setattr__(self, "templates", tuple(self.templates))


@register_teacher("open_clip")
def _open_clip(config: TeacherConfig, class_names: Sequence[str]) -> Teacher:
    from dad_core.teachers.openclip import OpenCLIPTeacher

    return OpenCLIPTeacher.from_config(config.model, config.pretrained, class_names, config.templates)


@register_teacher("timm")
def _timm(config: TeacherConfig, class_names: Sequence[str]) -> Teacher:
    from dad_core.teachers.timm_teacher import TimmTeacher

    return TimmTeacher.from_config(config.model, config.pretrained, class_names, config.image_size)


def create_teacher(config: TeacherConfig, class_names: Sequence[str], device: str | torch.device = "cpu") -> Teacher:
    """Build a frozen teacher whose logits are over `class_names`, in that order."""
    if not class_names:
        raise ValueError("create_teacher needs the class names the teacher must score")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.init_seed)  # random-init teachers (tests, benchmarks) must agree across actors
        teacher = TEACHERS[config.kind](config, class_names)
    return teacher.to(device)
