"""Checks on the one image convention of dad_core: float (B, 3, H, W) tensors in [0, 1].

Every model in dad_core (teacher, discretizer, pixel-space student) takes images this way and owns
its own normalisation, so a wrong input fails here, loudly, instead of giving a silently wrong answer.
"""
from __future__ import annotations

import torch

# Float round-off from decoders and resizes may leave values a hair outside [0, 1].
_RANGE_TOLERANCE = 1e-4


def check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """Raise a ValueError naming the problem unless `images` is a float (B, 3, H, W) batch in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor in [0, 1], got dtype {images.dtype} "
            "(convert uint8 images with images.float() / 255)"
        )
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.shape[1] != 3:
        raise ValueError(
            f"{name} must be RGB with 3 channels in dim 1, got {images.shape[1]} channels "
            f"(shape {tuple(images.shape)}); convert grayscale/RGBA/CMYK images to RGB first"
        )
    if images.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(images.shape)})")
    with torch.no_grad():
        lo, hi = images.min().item(), images.max().item()
    if lo != lo or hi != hi:  # NaN
        raise ValueError(f"{name} contains NaN")
    if lo < -_RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
        raise ValueError(
            f"{name} must be pixels in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
            "(pass un-normalised images; models apply their own normalisation)"
        )
    return images


def check_labels(labels: torch.Tensor, batch_size: int, num_classes: int) -> torch.Tensor:
    """Raise unless `labels` is an integer (B,) tensor of class indices in [0, num_classes)."""
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"labels must be an int64 tensor of class indices, got {getattr(labels, 'dtype', type(labels))}")
    if labels.shape != (batch_size,):
        raise ValueError(f"labels must have shape ({batch_size},), got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got range [{labels.min().item()}, {labels.max().item()}]"
        )
    return labels
