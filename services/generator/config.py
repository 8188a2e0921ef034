"""The generator job's configuration, and the identities derived from it (set fingerprint, set name)."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from schemas.sample_store import FORMAT_VERSION
from services.source.decode import DEFAULT_LARGE_PIXELS, DEFAULT_MAX_PIXELS
from services.source.listing import SHARD_ORDER

if TYPE_CHECKING:
    from dad_core import Preset


@dataclass(frozen=True)
class GeneratorConfig:
    """One generator job. Model and attack settings come from the preset (`--set` overrides them)."""

    source: str                                 # ImageFolder tree or Parquet dataset, any fsspec URL
    out: str = "out/samples"                    # sample store root; the set is <out>/<name>/
    preset: str = "tiny"
    overrides: tuple[str, ...] = ()             # preset overrides, "key=value" (dotted keys)
    name: str | None = None                     # set folder name; default <preset>-<source>-<hash>
    class_map: str | None = None                # JSON / CSV / txt mapping file (any fsspec URL)
    source_format: str = "auto"                 # auto | imagefolder | parquet
    limit: int | None = None                    # only the first N items of the sorted listing
    shard_size: int = 256                       # items per shard: the unit of commit and resume
    batch_size: int = 32                        # items per teacher/discretizer batch
    num_actors: int | None = None               # default: one per GPU actor slot, else 1
    gpus_per_actor: float | None = None         # default: 1 when the cluster has GPUs, else 0
    cpus_per_actor: float = 1.0
    torch_threads: int | None = None            # intra-op threads per actor; default max(1, cpus_per_actor)
    read_cpus: float = 0.5                      # per read (fetch + decode + resize) task
    write_cpus: float = 0.5                     # per write (PNG + Parquet + commit) task
    prefetch_shards: int | None = None          # shards read ahead of the actors; default: from the free CPUs
    max_attempts: int = 3                       # tries per batch before the job fails
    max_pixels: int = DEFAULT_MAX_PIXELS        # larger images are skipped as too_large
    large_pixels: int = DEFAULT_LARGE_PIXELS    # larger images are decoded but counted (statistics.large)
    storage_options: dict[str, Any] = field(default_factory=dict)  # fsspec options for remote URLs
    status_interval_s: float = 2.0
    progress_bar: bool = True

    def __post_init__(self):
        for name in ("shard_size", "batch_size", "max_attempts", "max_pixels", "large_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.prefetch_shards is not None and self.prefetch_shards < 0:
            raise ValueError(f"prefetch_shards must be >= 0, got {self.prefetch_shards}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.num_actors is not None and self.num_actors < 1:
            raise ValueError(f"num_actors must be >= 1, got {self.num_actors}")
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise ValueError(f"set name must be letters, digits, '.', '_' or '-', got {self.name!r}")


def generation_fingerprint(preset: "Preset", class_names: Sequence[str],
                           weights: Mapping[str, str | None] | None = None) -> str:
    """sha256 of what determines the samples (not the student or distillation settings of the preset).

    Two students with different training configs reuse one sample set; a different teacher, discretizer,
    attack, image size, class vocabulary, weight file content (`weights`: sha256 per model, see
    services.generator.weights) or shard order makes a different set.
    """
    d = preset.to_dict()
    key = {"format_version": FORMAT_VERSION, "image_size": d["image_size"], "teacher": d["teacher"],
           "discretizer": d["discretizer"], "attack": d["attack"], "class_names": list(class_names),
           "weights_sha256": dict(weights or {}), "shard_order": SHARD_ORDER}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()


def default_set_name(preset_name: str, source_uri: str, set_fingerprint: str, source_sha256: str) -> str:
    """`<preset>-<source folder>-<12 hex>`: stable for one (teacher, discretizer, dataset), so re-runs resume."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", source_uri.rstrip("/").rsplit("/", 1)[-1].removesuffix(".parquet"))
    digest = hashlib.sha256(f"{set_fingerprint}/{source_sha256}".encode()).hexdigest()[:12]
    return f"{preset_name}-{stem.strip('-') or 'source'}-{digest}"
