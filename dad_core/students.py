"""Students: any timm model, built through timm's one factory, from random init or a starting checkpoint."""
from __future__ import annotations

import hashlib
import os
import re
from typing import Any

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


RANDOM_INIT = "random"
PRETRAINED_INIT = "pretrained"
_PRETRAINED_TAG = re.compile(r"^pretrained:([A-Za-z0-9_]+)$")


def describe_init(init: str) -> str:
    """"random", "pretrained" (timm's default weights of the name), "pretrained:TAG", else a checkpoint file."""
    if init in (RANDOM_INIT, PRETRAINED_INIT) or _PRETRAINED_TAG.match(init):
        return init.split(":", 1)[0]
    if init.startswith("pretrained:"):
        raise ValueError(f"student_init {init!r}: a timm tag is pretrained:TAG (letters, digits, _), "
                         "e.g. pretrained:a1_in1k")
    return "file"


def init_student(name: str, num_classes: int, init: str = RANDOM_INIT, **kwargs) -> tuple[nn.Module, dict[str, Any]]:
    """The student and a record of where its weights started (what the run's lineage keeps).

    `init` is `random`; `pretrained` (timm's pretrained weights of `name`, e.g. `resnet50` or
    `resnet50.a1_in1k`, as the official DAD code's `pretrained=True`) or `pretrained:TAG`; or a local checkpoint
    file in timm's format (a state_dict, or a checkpoint holding one under state_dict/model/state_dict_ema;
    .pth/.pt/.bin/.safetensors). A classifier of another size than `num_classes` is left at its fresh init
    (fine-tuning ImageNet weights to K classes); every other weight must be in the file, with its shape.
    """
    kind = describe_init(init)
    if kind == RANDOM_INIT:
        return create_student(name, num_classes, **kwargs), {"init": RANDOM_INIT}
    if kind == PRETRAINED_INIT:
        return _pretrained_student(name, num_classes, init, **kwargs)
    model = create_student(name, num_classes, **kwargs)
    return model, {"init": "file", **load_student_weights(model, init)}


def _pretrained_student(name: str, num_classes: int, init: str, **kwargs) -> tuple[nn.Module, dict[str, Any]]:
    import timm

    tagged = f"{name.split('.', 1)[0]}.{init.split(':', 1)[1]}" if ":" in init else name
    create_student(tagged.split(".", 1)[0], num_classes, **{**kwargs, "pretrained": False})  # names it if unknown
    try:
        cfg = timm.models.get_pretrained_cfg(tagged)
    except RuntimeError:  # an unknown tag
        cfg = None
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        tags = [m for m in timm.list_pretrained(f"{tagged.split('.', 1)[0]}.*")][:10]
        raise ValueError(f"student_init {init!r}: timm has no pretrained weights for {tagged!r}"
                         + (f"; available: {tags}" if tags else ""))
    try:
        model = timm.create_model(tagged, pretrained=True, num_classes=num_classes, **kwargs)
    except Exception as e:  # noqa: BLE001 - hub errors (offline, not cached, no network) come in many types
        raise ValueError(f"student_init {init!r}: timm could not load the pretrained weights of {tagged!r} "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); timm fetches them "
                         "into the Hugging Face cache (HF_HOME): download them there first (HF_HUB_OFFLINE=1 reads "
                         "only the cache), or give a local checkpoint file") from e
    pc = model.pretrained_cfg
    return model, {"init": PRETRAINED_INIT, "weights": f"{pc.get('architecture')}.{pc.get('tag')}",
                   "hf_hub_id": pc.get("hf_hub_id"), "url": pc.get("url") or None,
                   "head": "loaded" if pc.get("num_classes") == num_classes else f"new ({num_classes} classes)"}


def _head_keys(model: nn.Module) -> set[str]:
    heads = (getattr(model, "pretrained_cfg", {}) or {}).get("classifier") or ()
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    return {k for k in model.state_dict() if any(k.startswith(h + ".") for h in heads)}


def load_student_weights(model: nn.Module, path: str) -> dict[str, Any]:
    """Load a timm-format checkpoint into `model` (head kept only when its shape fits); returns the record
    {path, sha256, head}. Raises ValueError naming the keys that do not fit."""
    from timm.models import load_state_dict

    if not os.path.isfile(path):
        raise FileNotFoundError(f"student_init checkpoint not found: {path!r}")
    try:
        state = load_state_dict(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load / safetensors on a foreign file raise anything
        raise ValueError(f"student_init {path!r} is not a readable timm checkpoint: {type(e).__name__}: {e}") from e
    own, head, classes = model.state_dict(), _head_keys(model), getattr(model, "num_classes", "?")
    head_fits = all(k in state and state[k].shape == own[k].shape for k in head)
    if not head_fits:
        state = {k: v for k, v in state.items() if k not in head}
    wrong = [f"{k} {tuple(v.shape)} (model {tuple(own[k].shape)})" for k, v in state.items()
             if k in own and v.shape != own[k].shape]
    missing = sorted(set(own) - set(state) - (set() if head_fits else head))
    unexpected = sorted(set(state) - set(own))
    if wrong or missing or unexpected:
        raise ValueError(f"student_init {path!r} does not fit the timm model ({classes} classes): {len(wrong)} shapes differ {wrong[:3]}, {len(missing)} missing {missing[:5]}, "
                         f"{len(unexpected)} unexpected {unexpected[:5]}")
    model.load_state_dict(state, strict=False)
    return {"path": path, "sha256": _sha256(path),
            "head": "loaded" if head_fits else f"new ({classes} classes)"}


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
