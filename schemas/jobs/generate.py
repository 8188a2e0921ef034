"""The generate job (`python -m services.generator`): make a sample set (clean + Q(x') rows) in a store.

`GenerateSettings` is what a caller chooses (the API's run config adds only the set's id); `GenerateJobConfig`
adds where the job reads and writes, which the control plane fixes from the run id.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from schemas.fields import Cpus, Gpus, Id, NonNegativeInt, JobStorageOptions, PositiveInt, RayAddress, Uri
from schemas.sample_store import VIEWS_AUTO_FULL_LOGITS, VIEWS_AUTO_TOP_K
from schemas.jobs.base import JobModel, PresetName, PresetOverrides, overrides_field, preset_field

MAX_PIXELS = 178_956_970  # PIL's decompression-bomb limit: larger images are skipped as too_large
LARGE_PIXELS = 89_478_485  # PIL's bomb-warning threshold: larger images are decoded and counted as large
MAX_VIEWS = 64

SourceFormat = Literal["auto", "imagefolder", "parquet"]


class GenerateSettings(JobModel):
    source: Uri = Field(description="ImageFolder tree (<class>/<image>) or Parquet image dataset; path or s3:// URL")
    preset: PresetName = preset_field("tiny")
    overrides: PresetOverrides = overrides_field()
    class_map: Uri | None = Field(None, description="class names: JSON {id: name} or [names], CSV id,name, or txt "
                                                    "(default: ImageNet wnids -> CLIP class names, else folder names)")
    source_format: SourceFormat = Field("auto", description="how to read the source")
    limit: PositiveInt | None = Field(None, description="use N images: a seeded random subset of the listing (the same "
                                                            "one every run; every class in proportion)")
    shard_size: PositiveInt = Field(256, description="images per shard, the unit of commit and resume")
    batch_size: PositiveInt = Field(32, description="images per model batch")
    num_actors: PositiveInt | None = Field(None, description="generator actors, each holding the models once "
                                                             "(default: one per GPU, or 1 without GPUs)")
    gpus_per_actor: Gpus | None = Field(None, description="GPUs each actor reserves, fractions allowed "
                                                          "(default: 1 when the cluster has GPUs, else 0: CPU)")
    cpus_per_actor: Cpus = Field(1.0, description="CPUs each actor reserves; leave some for read/write tasks")
    torch_threads: PositiveInt | None = Field(None, description="intra-op threads per actor (default: CPUs per actor)")
    read_cpus: Cpus = Field(0.5, description="CPUs per read/decode task")
    write_cpus: Cpus = Field(0.5, description="CPUs per write task")
    prefetch_shards: NonNegativeInt | None = Field(None, description="shards read ahead of the actors (default: "
                                                                     "grows with the CPUs the actors leave free)")
    max_attempts: PositiveInt = Field(3, description="tries per batch before the job fails")
    requantize_every: PositiveInt = Field(
        16, description="the diagnostics against Q(Q(x)) (*_vs_qqx: what the attack adds beyond a second pass "
                        "through Q) for every Nth item of a batch: each costs one more pass through Q (1 = every item, "
                        "~+35% generation time on the tiny preset); the other diagnostics cover every Q(x')")
    # augmented views with stored soft labels (FKD): see the README's "Augmented views" section
    views: Annotated[int, Field(ge=0, le=MAX_VIEWS)] = Field(
        0, description="augmented views stored per clean image (random-resized crop + flip, drawn from the seed "
                       "and sample id) with the teacher's logits on each, so students augment with stored logits "
                       "and no teacher in memory; 0 = none")
    view_image_size: PositiveInt | None = Field(
        None, description="side of the clean image views are cut from (default: the set's image size, i.e. the "
                          "stored clean image; larger stores a second PNG per image to crop from)")
    view_top_k: PositiveInt | None = Field(
        None, description="classes kept in each view's soft labels: the top k logits and one fill logit for the "
                          f"rest (default: full logits while views x classes <= {VIEWS_AUTO_FULL_LOGITS}, else "
                          f"top {VIEWS_AUTO_TOP_K})")
    view_min_scale: Annotated[float, Field(gt=0, le=1)] = Field(
        0.08, description="smallest crop area of a view, as a fraction of the image (RandomResizedCrop scale)")
    adversarial_views: bool = Field(False, description="also store the views of each Q(x') with the teacher's "
                                                       "logits (otherwise DAD's Q(x') term trains on the stored Q(x'))")

    @field_validator("view_image_size", "view_top_k", "view_min_scale", "adversarial_views")
    @classmethod
    def _only_with_views(cls, value, info: ValidationInfo):
        default = cls.model_fields[info.field_name].default
        if value != default and not info.data.get("views"):
            raise ValueError("applies to views only: set views to the number of views per image")
        return value


class GenerateJobConfig(GenerateSettings):
    """One generator job: the settings plus its locations and run-time options."""

    out: Uri = Field("out/samples", description="sample store root (any fsspec URL); the set goes to <out>/<name>/")
    name: Id | None = Field(None, description="set folder name (default: <preset>-<source folder>-<hash of config "
                                              "and source>)")
    storage_options: JobStorageOptions
    ray_address: RayAddress
    max_pixels: PositiveInt = Field(MAX_PIXELS, description="larger images are skipped as too_large")
    large_pixels: PositiveInt = Field(LARGE_PIXELS, description="larger images (but within max_pixels) are decoded "
                                                                "and counted in statistics.large")
    status_interval_s: float = Field(2.0, gt=0, description="seconds between writes of the live status file")
    progress_bar: bool = Field(True, description="show a progress bar (the status file is written either way)")
