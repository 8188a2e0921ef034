"""Optimizer (timm's factory: no weight decay on biases and norms) and a per-step cosine schedule with warm-up."""
from __future__ import annotations

import functools
import math

import torch
from torch import nn

from services.trainer.config import TrainConfig


def cosine_with_warmup(step: int, total_steps: int, warmup_steps: int, min_factor: float) -> float:
    """lr / peak lr at `step`: linear warm-up from 0, then cosine decay to `min_factor` at `total_steps`."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def create_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    from timm.optim import create_optimizer_v2

    kwargs = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
    return create_optimizer_v2(model, opt=cfg.optimizer, lr=cfg.learning_rate(),
                               weight_decay=cfg.weight_decay_value(), **kwargs)


def create_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Stepped once per optimizer update. The schedule is a function of the config, so a resume that extends
    `epochs` stretches the remaining cosine instead of restarting it; only the step count is state."""
    total = cfg.epochs * steps_per_epoch
    warmup = min(total, round(cfg.warmup_epochs * steps_per_epoch))
    min_factor = min(1.0, cfg.min_lr / cfg.learning_rate()) if cfg.learning_rate() > 0 else 0.0
    fn = functools.partial(cosine_with_warmup, total_steps=total, warmup_steps=warmup, min_factor=min_factor)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
