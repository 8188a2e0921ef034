"""CLIP as a zero-shot teacher (Sec. 3.3: "For phi we use CLIP").

The classifier head is built from class names and prompt templates exactly as in CLIP's zero-shot
evaluation (mean of normalised text embeddings per class), and logits carry CLIP's learned logit scale,
so the teacher's soft labels are CLIP's own distribution over the classes.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F

from dad_core.teachers.base import Teacher
from dad_core.teachers.clip_weights import create_clip

TEMPLATE_SETS = ("openai", "simple")


def prompt_templates(templates: str | Sequence[str]) -> tuple[str, ...]:
    """Resolve a template set name ('openai': CLIP's 80 ImageNet prompts, 'simple') or a list of format strings."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    if isinstance(templates, str):
        sets = {"openai": OPENAI_IMAGENET_TEMPLATES, "simple": SIMPLE_IMAGENET_TEMPLATES}
        if templates not in sets:
            raise ValueError(f"unknown prompt template set {templates!r}; use one of {TEMPLATE_SETS} or a list of strings")
        return tuple(sets[templates])
    templates = tuple(templates)
    if not templates:
        raise ValueError("templates must not be empty")
    return templates


def resolve_pretrained(model_name: str, pretrained: str | None) -> str | None:
    """Check a pretrained tag or checkpoint path before open_clip touches the network or disk."""
    import open_clip

    if pretrained is None or os.path.isfile(pretrained):
        return pretrained
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained in tags:
        return pretrained
    looks_like_path = os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))
    if looks_like_path:
        raise FileNotFoundError(f"CLIP checkpoint not found: {pretrained!r}")
    raise ValueError(f"unknown pretrained tag {pretrained!r} for open_clip model {model_name!r}; known tags: {tags}")


class OpenCLIPTeacher(Teacher):
    """Any open_clip model as a zero-shot classifier over `class_names`."""

    def __init__(self, model, tokenizer, class_names: Sequence[str], templates: str | Sequence[str] = "openai"):
        import open_clip

        pp = open_clip.get_model_preprocess_cfg(model)
        size = pp.get("size", model.visual.image_size)
        size = size[0] if isinstance(size, (tuple, list)) else size
        super().__init__(class_names, image_size=size, mean=pp["mean"], std=pp["std"])
        self.model = model
        with torch.no_grad():
            head = open_clip.build_zero_shot_classifier(
                model, tokenizer, classnames=list(class_names), templates=prompt_templates(templates),
                num_classes_per_batch=10, device=next(model.parameters()).device)
        self.register_buffer("zero_shot_head", head.float())  # (D, K), columns are unit class embeddings
        self.freeze()

    @classmethod
    def from_config(cls, model_name: str, pretrained: str | None, class_names: Sequence[str],
                    templates: str | Sequence[str] = "openai") -> "OpenCLIPTeacher":
        import open_clip

        from dad_core.model_configs import register_open_clip_configs

        register_open_clip_configs()
        if model_name not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {model_name!r}; see open_clip.list_models()")
        pretrained = resolve_pretrained(model_name, pretrained)
        model = create_clip(model_name, pretrained)  # QuickGELU exactly when the weights need it
        return cls(model, open_clip.get_tokenizer(model_name), class_names, templates)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        features = F.normalize(self.model.encode_image(pixels), dim=-1)  # (B, D)
        return self.model.logit_scale.exp() * features @ self.zero_shot_head.to(features.dtype)  # (B, K)
