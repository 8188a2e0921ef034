"""A small synthetic ImageFolder with a built-in distribution shift, so the demo needs no download.

Classes are shapes. The `photo` domain draws them filled on textured backgrounds; the `sketch` domain
draws the same shapes as thin outlines on white paper: a student trained on `photo` only is then tested on
a shift it never saw, the situation DAD is for (in miniature, with tiny random-init models).
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "cross")
DOMAINS = ("photo", "sketch")
# Saturated fills that stand out from the grey backgrounds: a small Q (64 codes) can keep them, so Q(x) shows
# the shape; the shape's colour says nothing about its class.
PALETTE = ((220, 40, 40), (40, 170, 60), (40, 80, 220), (240, 200, 30), (200, 50, 200), (30, 190, 200),
           (240, 120, 20), (30, 30, 30))


def _shape(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float, fill, outline, width: int):
    if name == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)
    elif name == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)
    elif name == "triangle":
        pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        draw.polygon(pts, fill=fill, outline=outline, width=width)
    else:
        t = max(2, r / 3)
        for box in ([cx - r, cy - t, cx + r, cy + t], [cx - t, cy - r, cx + t, cy + r]):
            draw.rectangle(box, fill=fill, outline=outline, width=width)


def render(name: str, domain: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    if domain == "photo":
        base = 125 + rng.integers(-25, 25, 3)  # tinted grey: the image's colour lives in the shape and the texture
        noise = rng.integers(-15, 15, (size // 8, size // 8, 3))
        bg = np.clip(base + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(bg).resize((size, size), Image.BILINEAR)
        fill, outline, width = PALETTE[int(rng.integers(len(PALETTE)))], None, 1
    else:
        img = Image.new("RGB", (size, size), (250, 250, 245))
        fill, outline, width = None, (20, 20, 20), 2
    r = rng.uniform(0.2, 0.35) * size
    cx, cy = rng.uniform(r, size - r, 2)
    _shape(ImageDraw.Draw(img), name, cx, cy, r, fill, outline, width)
    return img


def make_dataset(root: str | Path, per_class: int = 24, size: int = 64, seed: int = 0,
                 splits: dict[str, float] | None = None) -> dict[str, Path]:
    """Write <root>/<domain>/<split>/<class>/<i>.png; returns {"photo/train": path, ...}."""
    splits = splits or {"train": 0.75, "test": 0.25}
    root = Path(root)
    out = {}
    for d, domain in enumerate(DOMAINS):
        rng = np.random.default_rng(seed * 100 + d)
        for c in CLASSES:
            images = [render(c, domain, rng, size) for _ in range(per_class)]
            start = 0
            for split, frac in splits.items():
                n = round(frac * per_class)
                folder = root / domain / split / c
                folder.mkdir(parents=True, exist_ok=True)
                for i, img in enumerate(images[start:start + n]):
                    img.save(folder / f"{c}-{start + i:04d}.png")
                start += n
                out[f"{domain}/{split}"] = root / domain / split
    return out


def merge_domains(paths: dict[str, Path], root: str | Path) -> dict[str, Path]:
    """Every domain's split in one ImageFolder, <root>/<split>/<class>/<domain>-<file> (hard links where the
    file system allows): the teacher's training data, so that it knows the shift the students never see."""
    root = Path(root)
    out = {}
    for key, folder in paths.items():
        domain, split = key.split("/")
        for image in folder.rglob("*.png"):
            target = root / split / image.parent.name / f"{domain}-{image.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                try:
                    os.link(image, target)
                except OSError:
                    shutil.copyfile(image, target)
        out[split] = root / split
    return out
