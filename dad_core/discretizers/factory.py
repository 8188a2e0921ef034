"""`create_discretizer`: the one constructor for Q; kinds registered like objectives and teachers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from dad_core.discretizers.base import Discretizer, IdentityDiscretizer
from dad_core.registry import Registry

DiscretizerBuilder = Callable[["DiscretizerConfig"], Discretizer]
DISCRETIZERS: Registry[DiscretizerBuilder] = Registry("discretizer.kind")
register_discretizer = DISCRETIZERS.register  # @register_discretizer("name"): fn(config) -> Discretizer
list_discretizers = DISCRETIZERS.names


@dataclass(frozen=True)
class DiscretizerConfig:
    """Which Q to use. Paper default (App. C): VQGAN f=8, d=4, K=16384 ('vq-f8')."""

    kind: str = "vqgan"               # "vqgan" | "identity" (the no-discretizer ablation)
    config: str = "vq-f8"             # bundled taming config name or a .yaml path
    checkpoint: str | None = None     # state_dict / Lightning checkpoint path; None = random init
    trust_checkpoint: bool = False    # allow full unpickling of Lightning checkpoints (trusted files only)
    init_seed: int = 0                # random-init weights are identical in every process

    def __post_init__(self):
        DISCRETIZERS.check(self.kind)


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
        q = DISCRETIZERS[config.kind](config)
    return q.to(device)
