"""A seeded synthetic ImageFolder for the rehearsal: small smooth random images, so no data set is needed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("n01440764", "n01443537", "n02123045", "n02085620", "n02690373")  # ImageNet wnids (CLIP names them)


def make_source(root: Path, images: int, seed: int, size: tuple[int, int] = (40, 36)) -> Path:
    """`images` JPEGs spread evenly over CLASSES under `root`; the same (images, seed) gives the same bytes."""
    from PIL import Image

    if images < len(CLASSES):
        raise ValueError(f"images must be at least {len(CLASSES)} (one per class), got {images}")
    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(images):
        base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        path = root / CLASSES[i % len(CLASSES)] / f"img_{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(base, "RGB").resize((w, h), Image.BILINEAR).save(path, quality=90)
    return root
