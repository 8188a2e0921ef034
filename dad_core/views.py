"""Augmented views with stored teacher soft labels (FKD, Shen & Xing, ECCV 2022, applied to DAD's samples).

A view is a random-resized crop box and a horizontal flip, drawn deterministically from (the set's seed, the
row's sample_id), so the generator and every trainer draw the same K views of an image. `render_view` is the
one definition of the pixels of a view: the generator runs the teacher on its output and stores the logits;
the trainer calls it again on the decoded stored image and gets the same uint8 pixels, so the stored logits
belong to exactly what the student sees -- augmentation with no teacher in memory.

The soft labels of a view are stored either as the full logits (float16) or compressed to the top-k classes
(`compress_logits`): the k largest logits, their class indices, and one fill logit for every other class,
chosen so that at temperature 1 the other classes keep their total probability mass (FKD stores top-k
probabilities and spreads the rest the same way).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from schemas.sample_store import VIEWS_AUTO_FULL_LOGITS, VIEWS_AUTO_TOP_K

DEFAULT_SCALE = (0.08, 1.0)          # RandomResizedCrop's defaults (torchvision, timm)
DEFAULT_RATIO = (3 / 4, 4 / 3)
INTERPOLATION = "bicubic"            # as the source decode's resize and the trainer's online random_resized_crop
_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}  # PIL antialiases both when shrinking


@dataclass(frozen=True)
class ViewConfig:
    """How the K views of an image are drawn (recorded in the set's manifest)."""

    count: int                                   # K views per image
    scale: tuple[float, float] = DEFAULT_SCALE   # crop area as a fraction of the image
    ratio: tuple[float, float] = DEFAULT_RATIO   # crop aspect ratio w/h
    flip: bool = True                            # horizontal flip with probability 1/2

    def __post_init__(self):
        if self.count < 0:
            raise ValueError(f"views count must be >= 0, got {self.count}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"view scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"view ratio must satisfy 0 < min <= max, got {self.ratio}")


@dataclass(frozen=True)
class View:
    """A crop box (pixels of the image it is cut from) and whether the crop is flipped left-right."""

    top: int
    left: int
    height: int
    width: int
    flip: bool

    def as_tuple(self) -> tuple[int, int, int, int, bool]:
        return self.top, self.left, self.height, self.width, self.flip


def view_seed(seed: int, key: str) -> int:
    """Seed of one row's views: the set's seed and the row's sample_id, whatever worker draws them."""
    return int.from_bytes(hashlib.sha256(f"dad-views/1\x00{seed}\x00{key}".encode()).digest()[:8], "little")


def draw_views(config: ViewConfig, seed: int, key: str, height: int, width: int) -> list[View]:
    """K views of an (height, width) image: torchvision's RandomResizedCrop.get_params (10 tries, then the
    largest centred crop within `ratio`) and a fair coin for the flip, from a generator seeded by (seed, key)."""
    rng = np.random.default_rng(view_seed(seed, key))
    area = height * width
    log_ratio = (math.log(config.ratio[0]), math.log(config.ratio[1]))
    views = []
    for _ in range(config.count):
        box = None
        for _ in range(10):
            target = area * rng.uniform(*config.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                box = (int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w)
                break
        if box is None:  # fallback of torchvision: the whole image, cut to the nearest allowed ratio
            in_ratio = width / height
            if in_ratio < config.ratio[0]:
                w, h = width, int(round(width / config.ratio[0]))
            elif in_ratio > config.ratio[1]:
                h, w = height, int(round(height * config.ratio[1]))
            else:
                w, h = width, height
            box = ((height - h) // 2, (width - w) // 2, h, w)
        flip = bool(rng.random() < 0.5) if config.flip else False
        views.append(View(*box, flip))
    return views


def render_view(pixels: np.ndarray, view: View, size: int, interpolation: str = INTERPOLATION) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: the view's box resized to size x size, then flipped.

    The one definition of a view's pixels: the teacher's stored logits are computed on its output, and the
    trainer rebuilds the student's input with it (passing the interpolation the set records), so both see
    the same bytes.
    """
    if interpolation not in _FILTERS:
        raise ValueError(f"interpolation must be one of {sorted(_FILTERS)}, got {interpolation!r}")
    img = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    box = (view.left, view.top, view.left + view.width, view.top + view.height)
    img = img.resize((size, size), _FILTERS[interpolation], box=box)
    if view.flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(img, dtype=np.uint8).copy()


def render_views(pixels: np.ndarray, views: list[View], size: int, interpolation: str = INTERPOLATION) -> np.ndarray:
    """(K, size, size, 3) uint8: every view of one image."""
    if not views:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([render_view(pixels, v, size, interpolation) for v in views])


def stored_top_k(count: int, num_classes: int, top_k: int | None) -> int | None:
    """How many classes the soft labels of a set keep: None = full logits.

    `top_k` None is the default rule: full logits while count x classes <= VIEWS_AUTO_FULL_LOGITS, else the
    top VIEWS_AUTO_TOP_K; a given k >= num_classes also means full logits.
    """
    if top_k is None:
        top_k = None if count * num_classes <= VIEWS_AUTO_FULL_LOGITS else VIEWS_AUTO_TOP_K
    return None if top_k is None or top_k >= num_classes else int(top_k)


def compress_logits(logits: np.ndarray, top_k: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, C) logits -> (values, indices): full float16 logits and None, or with top_k = k < C, values
    (N, k + 1) float16 -- the k largest logits, then the fill logit of every other class -- and indices
    (N, k) int32. The fill is logsumexp(other logits) - log(C - k): their softmax mass (T = 1) is kept."""
    logits = np.asarray(logits, dtype=np.float32)
    n, c = logits.shape
    if top_k is None or top_k >= c:
        return logits.astype(np.float16), None
    order = np.argsort(-logits, axis=1, kind="stable")
    top, rest = order[:, :top_k], order[:, top_k:]
    others = np.take_along_axis(logits, rest, 1).astype(np.float64)
    peak = others.max(1, keepdims=True)
    fill = peak[:, 0] + np.log(np.exp(others - peak).sum(1)) - math.log(c - top_k)
    values = np.concatenate([np.take_along_axis(logits, top, 1), fill[:, None]], 1).astype(np.float16)
    return values, top.astype(np.int32)


def expand_logits(values: np.ndarray, indices: np.ndarray | None, num_classes: int) -> np.ndarray:
    """(N, C) float32 logits from `compress_logits`' output (exact for full logits)."""
    values = np.asarray(values, dtype=np.float32)
    if indices is None:
        return values
    indices = np.asarray(indices, dtype=np.int64)
    out = np.repeat(values[:, -1:], num_classes, axis=1)
    np.put_along_axis(out, indices, values[:, :-1], 1)
    return out
