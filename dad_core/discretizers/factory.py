"""`create_discretizer`: the one constructor for Q."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dad_core.discretizers.base import Discretizer, IdentityDiscretizer

DISCRETIZER_KINDS = ("vqgan", "identity")


@dataclass(frozen=True)
class DiscretizerConfig:
    """Which Q to use. Paper default (App. C): VQGAN f=8, d=4, K=16384 ('vq-f8')."""

    kind: str = "vqgan"               # "vqgan" | "identity" (the no-discretizer ablation)
    config: str = "vq-f8"             # bundled taming config name or a .yaml path
    checkpoint: str | None = None     # state_dict / Lightning checkpoint path; None = random init
    trust_checkpoint: bool = False    # allow full unpickling of Lightning checkpoints (trusted files only)
    init_seed: int = 0                # random-init weights are identical in every process

    def __post_init__(self):
        if self.kind not in DISCRETIZER_KINDS:
            raise ValueError(f"discretizer.kind must be one of {DISCRETIZER_KINDS}, got {self.kind!r}")


def create_discretizer(config: DiscretizerConfig, device: str | torch.device = "cpu") -> Discretizer:
    if config.kind == "identity":
        return IdentityDiscretizer().to(device)
    from dad_core.discretizers.vqgan import VQGANDiscretizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.init_seed)
        q = VQGANDiscretizer.from_config(config.config, config.checkpoint, config.trust_checkpoint)
    return q.to(device)
