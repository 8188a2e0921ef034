"""The trainer service: a Ray Train (DDP) job that trains a timm student on clean images and DAD samples.

Thin by design: parse the config (cli, config), check the inputs (preflight), move the data (data), call
dad_core's losses (step), and report (metrics, checkpointing). `loop.train_worker` is the per-worker loop.
"""
from services.trainer.config import TrainConfig

__all__ = ["TrainConfig"]
