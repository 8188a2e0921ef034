"""`create_discretizer`: the one constructor for Q; kinds registered like objectives and teachers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from dad_core.discretizers.base import Discretizer, IdentityDiscretizer

DiscretizerBuilder = Callable[["DiscretizerConfig"], Discretizer]
_REGISTRY: dict[str, DiscretizerBuilder] = {}


def register_discretizer(kind: str):
    """Register `fn(config) -> Discretizer` as `discretizer.kind = kind` (built under the config's init seed)."""
    def register(fn: DiscretizerBuilder) -> DiscretizerBuilder:
        if kind in _REGISTRY:
            raise ValueError(f"discretizer kind {kind!r} is already registered")
        _REGISTRY[kind] = fn
        return fn
    return register


def list_discretizers() -> list[str]:
    return list(_REGISTRY)


@dataclass(frozen=True)
class DiscretizerConfig:
    """Which Q to use. Paper default (App. C): VQGAN f=8, d=4, K=16384 ('vq-f8')."""

    kind: str = "vqgan"               # "vqgan" | "identity" (the no-discretizer ablation)
    config: str = "vq-f8"             # bundled taming config name or a .yaml path
    checkpoint: str | None = None     # state_dict / Lightning checkpoint path; None = random init
    trust_checkpoint: bool = False    # allow full unpickling of Lightning checkpoints (trusted files only)
    init_seed: int = 0                # random-init weights are identical in every process

    def __post_init__(self):
        if self.kind not in _REGISTRY:
            raise ValueError(f"discretizer.kind must be one of {', '.join(_REGISTRY)}, got {self.kind!r}")


@register_discretizer("vqgan")
def _vqgan(config: DiscretizerConfig) -> Discretizer:
    from dad_core.discretizers.vqgan import VQGANDiscretizer

    return VQGANDiscretizer.from_config(config.config, config.checkpoint, config.trust_checkpoint)


@register_discretizer("identity")
def _identity(config: DiscretizerConfig) -> Discretizer:
    return IdentityDiscretizer()


def create_discretizer(config: DiscretizerConfig, device: str | torch.device = "cpu") -> Discretizer:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.init_seed)
        q = _REGISTRY[config.kind](config)
    return q.to(device)
