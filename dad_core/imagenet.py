"""ImageNet class vocabulary: WordNet ids (the folder names of ImageNet-style trees) and CLIP's class names.

The id lists ship as plain data in `dad_core/data/` and are read lazily (nothing happens at import):

- `imagenet1k_wnids.txt`: the 1,000 ImageNet-1k ids, sorted; line i is class index i of the standard label
  order (torchvision's ImageFolder order, and the order of open_clip's `IMAGENET_CLASSNAMES`).
- `imagenet_a_wnids.txt`, `imagenet_r_wnids.txt`: the 200-class subsets of ImageNet-A and ImageNet-R. A
  1,000-way model is scored on them by keeping only these logits (`subset_indices`) before the argmax.
"""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Iterable

WNID_PATTERN = re.compile(r"^n\d{8}$")
_SUBSETS = {"imagenet-a": "imagenet_a_wnids.txt", "imagenet-r": "imagenet_r_wnids.txt"}


def _read_ids(file_name: str) -> tuple[str, ...]:
    text = resources.files("dad_core.data").joinpath(file_name).read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@lru_cache(maxsize=None)
def imagenet1k_wnids() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k WordNet ids in class-index order (sorted)."""
    return _read_ids("imagenet1k_wnids.txt")


@lru_cache(maxsize=None)
def imagenet1k_classnames() -> tuple[str, ...]:
    """open_clip's ImageNet class names (CLIP's zero-shot prompts), aligned with `imagenet1k_wnids()`."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    names = tuple(IMAGENET_CLASSNAMES)
    if len(names) != len(imagenet1k_wnids()):  # guards against an open_clip that changes its list
        raise RuntimeError(f"open_clip has {len(names)} ImageNet class names, expected {len(imagenet1k_wnids())}")
    return names


@lru_cache(maxsize=None)
def wnid_to_classname() -> dict[str, str]:
    return dict(zip(imagenet1k_wnids(), imagenet1k_classnames()))


@lru_cache(maxsize=None)
def wnid_to_index() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(imagenet1k_wnids())}


def subset_wnids(name: str) -> tuple[str, ...]:
    """The 200 wnids of 'imagenet-a' or 'imagenet-r', sorted (the folder names of those datasets)."""
    if name not in _SUBSETS:
        raise ValueError(f"unknown ImageNet subset {name!r}; known: {sorted(_SUBSETS)}")
    return _read_ids(_SUBSETS[name])


def subset_indices(name: str) -> list[int]:
    """ImageNet-1k class indices of a 200-class subset, in the subset's (sorted-wnid) order."""
    index = wnid_to_index()
    return [index[w] for w in subset_wnids(name)]


def is_wnid(name: str) -> bool:
    return bool(WNID_PATTERN.match(name))


def all_imagenet_wnids(names: Iterable[str]) -> bool:
    """True when every name is an ImageNet-1k id (so a folder tree can take CLIP's ImageNet class names)."""
    names = list(names)
    index = wnid_to_index()
    return bool(names) and all(n in index for n in names)


def classnames_for_wnids(wnids: Iterable[str]) -> list[str]:
    """CLIP class names for ImageNet ids; an id outside ImageNet-1k raises a KeyError naming it."""
    table = wnid_to_classname()
    out = []
    for w in wnids:
        if w not in table:
            raise KeyError(f"{w!r} is not an ImageNet-1k WordNet id")
        out.append(table[w])
    return out
