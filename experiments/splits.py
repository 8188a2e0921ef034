"""Deterministic per-domain train/val/test splits of an ImageFolder, materialised as symlink trees.

A file's split depends only on a hash of its relative path, so splits are stable across runs and machines
and every service reads a split as a plain ImageFolder.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def split_of(relative_path: str, fractions: dict[str, float], seed: int = 0) -> str:
    """The split a file falls in: its hash, as a number in [0, 1), against cumulative fractions."""
    u = int(hashlib.sha256(f"{seed}:{relative_path}".encode()).hexdigest()[:12], 16) / 16 ** 12
    acc = 0.0
    for name, frac in fractions.items():
        acc += frac
        if u < acc:
            return name
    return list(fractions)[-1]


def materialise_splits(domain_dir: str | Path, out_dir: str | Path, fractions: dict[str, float],
                       seed: int = 0, prefix: str = "") -> dict[str, int]:
    """Write <out_dir>/<split>/<class>/<prefix><file> symlinks; returns the image count per split."""
    domain_dir, out_dir = Path(domain_dir).resolve(), Path(out_dir)
    counts = dict.fromkeys(fractions, 0)
    for cls in sorted(p for p in domain_dir.iterdir() if p.is_dir()):
        for f in sorted(cls.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            split = split_of(f"{cls.name}/{f.name}", fractions, seed)
            link = out_dir / split / cls.name / f"{prefix}{f.name}"
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                os.symlink(f, link)
            counts[split] += 1
    return counts
