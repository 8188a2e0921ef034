"""The generator job's configuration (defined once, in schemas.jobs), and the identities derived from it
(set fingerprint, set name)."""
from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Mapping, Sequence

import services.jobs  # noqa: F401 - installs the dad_core checks the config validates with
from schemas.jobs import GenerateJobConfig
from schemas.sample_store import FORMAT_VERSION
from services.source.listing import SHARD_ORDER

if TYPE_CHECKING:
    from dad_core import Preset
    from schemas.manifest import ViewsInfo


# One generator job: the config the API validates and `--config` reads (schemas.jobs.generate).
GeneratorConfig = GenerateJobConfig


def generation_fingerprint(preset: "Preset", class_names: Sequence[str],
                           weights: Mapping[str, str | None] | None = None, views: "ViewsInfo | None" = None) -> str:
    """sha256 of what determines the samples (not the student or distillation settings of the preset).

    Two students with different training configs reuse one sample set; a different teacher, discretizer,
    attack, image size, class vocabulary, weight file content (`weights`: sha256 per model, see
    services.generator.weights), shard order or views (how many, how drawn and stored) makes a different set.
    """
    d = preset.to_dict()
    key = {"format_version": FORMAT_VERSION, "image_size": d["image_size"], "teacher": d["teacher"],
           "discretizer": d["discretizer"], "attack": d["attack"], "class_names": list(class_names),
           "weights_sha256": dict(weights or {}), "shard_order": SHARD_ORDER,
           "views": views.model_dump() if views is not None else None}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()


def default_set_name(preset_name: str, source_uri: str, set_fingerprint: str, source_sha256: str) -> str:
    """`<preset>-<source folder>-<12 hex>`: stable for one (teacher, discretizer, dataset), so re-runs resume."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", source_uri.rstrip("/").rsplit("/", 1)[-1].removesuffix(".parquet"))
    digest = hashlib.sha256(f"{set_fingerprint}/{source_sha256}".encode()).hexdigest()[:12]
    return f"{preset_name}-{stem.strip('-') or 'source'}-{digest}"
