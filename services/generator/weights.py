"""sha256 of the weight files a sample set is made from, so they are part of the set's identity.

A teacher retrained into the same checkpoint path must make a new set (new fingerprint, so new folder and
sample_ids), never reuse the old set's logits. Tags (e.g. open_clip's `openai`) and random init (None) are
identified by the config itself; only local files are hashed, before any Ray work starts.
"""
from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dad_core import Preset


def file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def weights_digests(preset: "Preset") -> dict[str, str | None]:
    """{"teacher": sha256 or None, "discretizer": sha256 or None} of the preset's weight files."""
    def digest(path: str | None) -> str | None:
        return file_sha256(path) if path and os.path.isfile(path) else None

    discretizer = preset.discretizer.checkpoint if preset.discretizer.kind != "identity" else None
    return {"teacher": digest(preset.teacher.pretrained), "discretizer": digest(discretizer)}
