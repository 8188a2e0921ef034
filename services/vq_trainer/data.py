"""Load a (small) source into memory as a uint8 tensor, counting what could not be read."""
from __future__ import annotations

import sys
from collections import Counter
from typing import Any, Mapping

import numpy as np
import torch
from tqdm import tqdm

from services.source import ReadSpec, list_source, read_items


def load_images(uri: str, image_size: int, storage_options: Mapping[str, Any] | None = None,
                limit: int | None = None, chunk: int = 64, progress: bool | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, list[str], Counter]:
    """(images uint8 (N, 3, S, S), labels (N,), class names, skipped-reason counts) of a source."""
    listing = list_source(uri, storage_options=storage_options)
    items = listing.items[:limit] if limit else listing.items
    spec = ReadSpec.for_listing(listing, image_size, storage_options=dict(storage_options or {}))
    pixels, labels, skipped = [], [], Counter(listing.skipped.reasons)
    show = sys.stderr.isatty() if progress is None else progress  # default: a bar on a terminal only
    for start in tqdm(range(0, len(items), chunk), desc=f"read {uri}", unit="chunk", disable=not show):
        batch = items[start:start + chunk]
        for item, decoded in zip(batch, read_items(spec, batch)):
            if decoded.pixels is None:
                skipped[decoded.error] += 1
                continue
            pixels.append(decoded.pixels)
            labels.append(item.label)
    if not pixels:
        raise ValueError(f"no readable image in {uri!r} (skipped: {dict(skipped)})")
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    return images, torch.tensor(labels), listing.class_names, skipped
