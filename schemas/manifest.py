"""The manifest that publishes a sample set, and the per-shard commit markers it is built from.

Written last by the generator (`<set>/manifest.json`); readers trust only a manifest, never a directory
listing, so a half-written set is invisible. `SampleSetManifest.from_json` refuses a corrupt file or a
format/version it does not know, with a message that says which.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.perturbation import PerturbationTally
from schemas.sample_store import FORMAT_NAME, FORMAT_VERSION, READABLE_FORMAT_VERSIONS


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


MAX_EXAMPLES = 5


class ReasonCounts(_Model):
    """A count with its breakdown by reason, e.g. errored = {total: 3, reasons: {"corrupt": 2, "too_large": 1}}.

    `examples` keeps the first few item ids per reason, so a user can find the offending files.
    """

    total: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)
    examples: dict[str, list[str]] = Field(default_factory=dict)

    def add(self, reason: str, n: int = 1, example: str | None = None) -> None:
        if n:
            self.total += n
            self.reasons[reason] = self.reasons.get(reason, 0) + n
        if example is not None:
            kept = self.examples.setdefault(reason, [])
            if len(kept) < MAX_EXAMPLES:
                kept.append(example)

    def merge(self, other: "ReasonCounts") -> None:
        for reason, n in other.reasons.items():
            self.add(reason, n)
        for reason, examples in other.examples.items():
            for example in examples:
                self.add(reason, 0, example)


class Statistics(_Model):
    """What happened to the source items. seen = clean rows + errored; every item is in exactly one bucket."""

    seen: int = 0                # source items (image files / Parquet rows) the job tried to read
    clean: int = 0               # items decoded: each has a clean row and an adversarial row
    converted: ReasonCounts = Field(default_factory=ReasonCounts)  # decoded after a conversion, by source mode
    large: ReasonCounts = Field(default_factory=ReasonCounts)      # decoded, above the configured large-image pixels
    accepted: int = 0            # adversarial rows the teacher still classifies correctly (Eq. 9)
    rejected: ReasonCounts = Field(default_factory=ReasonCounts)   # adversarial rows that fail the test
    errored: ReasonCounts = Field(default_factory=ReasonCounts)    # items that gave no rows, by reason
    skipped: ReasonCounts = Field(default_factory=ReasonCounts)    # seen while listing, never read (non-images, non-UTF-8 names)
    teacher_clean_correct: int = 0  # clean rows the teacher classifies correctly
    perturbation: PerturbationTally | None = None  # what the attack changed, over every Q(x') (v4; None: older sets)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.clean if self.clean else 0.0

    def merge(self, other: "Statistics") -> None:
        """Add another shard's counts (listing-level `skipped` is merged too)."""
        for name in ("seen", "clean", "accepted", "teacher_clean_correct"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("converted", "large", "rejected", "errored", "skipped"):
            getattr(self, name).merge(getattr(other, name))
        if other.perturbation is not None:
            if self.perturbation is None:
                self.perturbation = PerturbationTally()
            self.perturbation.merge(other.perturbation)


class ModelInfo(_Model):
    """Identity of a model in the set: config id plus a checksum of the weights actually used."""

    kind: str
    name: str                    # open_clip / timm model name, or taming config name
    weights: str | None          # pretrained tag or checkpoint path; None = random init (tests, benchmarks)
    checksum: str                # sha256 of the state_dict (dad_core.module_checksum)
    weights_sha256: str | None = None  # sha256 of the weights file (part of the set fingerprint); None: tag,
                                       # random init, or a set made before it was recorded


class ViewsInfo(_Model):
    """How a set's augmented views were made (format v3, generator `--views K`; dad_core.views)."""

    count: int                          # K views per row
    scale: list[float]                  # RandomResizedCrop area range, fraction of the image cut from
    ratio: list[float]                  # aspect ratio range (w/h)
    flip: bool                          # horizontal flip with probability 1/2
    interpolation: str                  # resize of the crop box to image_size (dad_core.views.INTERPOLATION)
    source_size: int                    # side of the square image views are cut from: image_size = the stored
                                        # clean image itself, larger = a copy in the view_image column
    top_k: int | None                   # classes kept in each view's soft labels; None: full logits
    kinds: list[str]                    # row kinds that carry views: ["clean"] or ["clean", "adversarial"]


class SampleSetConfig(_Model):
    """Everything that determines the samples; `fingerprint` feeds every sample_id."""

    preset: str
    preset_config: dict[str, Any]       # the resolved preset (dad_core Preset.to_dict())
    fingerprint: str                    # sha256 of the generation-relevant config (not the student's)
    teacher: ModelInfo
    discretizer: ModelInfo
    attack: dict[str, Any]
    seed: int
    image_size: int
    image_format: str = "png"
    shard_size: int
    batch_size: int
    class_ids: list[str]                # source class folder names (ImageNet wnids where they are)
    class_names: list[str]              # names the teacher scores; label i is class_names[i]
    shard_order: str = "sorted"         # how items were ordered before sharding (services.source.listing.SHARD_ORDER);
                                        # "sorted": the class-sorted listing (sets made before the shuffle)
    views: ViewsInfo | None = None      # augmented views with the teacher's logits (v3); None: no views
    requantize_every: int | None = None  # Q(Q(x)) diagnostics on every Nth item of a batch (v4); None: older sets


class SourceFingerprint(_Model):
    uri: str
    format: Literal["imagefolder", "parquet"]
    num_items: int
    num_classes: int
    sha256: str                         # over sorted (item id, size) and the class mapping
    class_map: str | None = None


class ShardInfo(_Model):
    index: int
    path: str                           # relative to the set folder
    num_rows: int
    num_bytes: int
    sha256: str
    first_item: int                     # shard covers items [first_item, first_item + num_items) of the listing
                                        # in the set's shard_order
    num_items: int


class CodeVersion(_Model):
    package: str = "dad"
    version: str = "unknown"
    git_commit: str | None = None
    python: str = ""
    libraries: dict[str, str] = Field(default_factory=dict)


class Timings(_Model):
    started_at: datetime                # first run that worked on the set
    finished_at: datetime
    runs: int = 1                       # how many runs (resumes included) built the set
    wall_s: float = 0.0                 # the last run, start to manifest
    stage_s: dict[str, float] = Field(default_factory=dict)  # summed over shards: read, generate, encode, judge, write


class ShardCommit(_Model):
    """Commit marker of one shard: written after its Parquet file, so it only ever names a complete file."""

    format: Literal["dad-shard-commit"] = "dad-shard-commit"
    format_version: int = FORMAT_VERSION
    set_fingerprint: str
    run_id: str                         # the run that wrote it (Timings.runs counts distinct runs)
    teacher_checksum: str
    discretizer_checksum: str
    shard: ShardInfo
    statistics: Statistics
    stage_s: dict[str, float] = Field(default_factory=dict)
    committed_at: datetime


class SampleSetPlan(_Model):
    """The job as resolved at its first start; a resume must match it (same config, source, shard size)."""

    format: Literal["dad-sample-plan"] = "dad-sample-plan"
    format_version: int = FORMAT_VERSION
    name: str
    config: SampleSetConfig
    source: SourceFingerprint
    num_shards: int
    listing: Statistics                 # listing-level skips, counted once for the set
    started_at: datetime


class SampleSetManifest(_Model):
    format: Literal["dad-sample-set"] = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    name: str
    created_at: datetime
    config: SampleSetConfig
    source: SourceFingerprint
    shards: list[ShardInfo]
    statistics: Statistics
    timings: Timings
    code_version: CodeVersion

    @property
    def num_rows(self) -> int:
        return sum(s.num_rows for s in self.shards)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "manifest") -> "SampleSetManifest":
        """Parse and validate; a corrupt file or an unknown format/version raises ValueError naming `source`."""
        return parse_versioned(cls, text, source, FORMAT_NAME)


def parse_versioned(model: type[_Model], text: str | bytes, source: str, format_name: str):
    """Parse JSON into `model`, checking `format` and `format_version` first for a clear error."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{source} is not valid JSON (corrupt or truncated file?): {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source} is not a {format_name} document (top level is {type(data).__name__})")
    if data.get("format") != format_name:
        raise ValueError(f"{source} has format {data.get('format')!r}, expected {format_name!r}")
    version = data.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        readable = ", ".join(map(str, READABLE_FORMAT_VERSIONS))
        raise ValueError(f"{source} has format_version {version!r}; this code reads versions {readable}"
                         + (" (written by newer code: upgrade)" if newer else ""))
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"{source} is not a valid {format_name} document: {e}") from None
