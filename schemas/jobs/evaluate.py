"""The evaluate job (`python -m services.evaluator`): score a model on the robustness suites (Sec. 4.1)."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema, field_validator

from schemas.fields import (
    LOCATION, URI_PATTERN, Cpus, NonNegativeInt, Overrides, PositiveInt, JobStorageOptions, RayAddress, Seed, Uri, check_plain,
    check_uri,
)
from schemas.jobs.base import JobModel

# The evaluator's suite names (services.evaluator.suites.SUITES; a test keeps the two equal). A suite item is
# `NAME`, `NAME=URI`, `imagefolder:URI` or `LABEL=imagefolder:URI`: nothing else, and never a leading dash.
EVAL_SUITE_NAMES: tuple[str, ...] = ("imagenet-val", "imagenet-v2", "imagenet-r", "imagenet-sketch", "imagenet-a",
                                     "imagenet-c", "stylized-imagenet")
IMAGEFOLDER = "imagefolder:"
SUITE_PATTERN = (rf"^(?:(?:{'|'.join(EVAL_SUITE_NAMES)})(?:={LOCATION})?"
                 rf"|(?:[A-Za-z0-9][A-Za-z0-9_.+-]{{0,63}}=)?imagefolder:{LOCATION})$")


def check_suite(value: str) -> str:
    if "," in value:
        raise ValueError("one suite per list item (no commas)")
    if value.startswith("-"):
        raise ValueError("must not start with '-'")
    check_plain(value)
    if not re.fullmatch(SUITE_PATTERN, value):
        raise ValueError(f"a suite is NAME, NAME=URI, imagefolder:URI or LABEL=imagefolder:URI, with NAME one of "
                         f"{', '.join(EVAL_SUITE_NAMES)} (URIs never start with '-')")
    return value


Suite = Annotated[str, StringConstraints(max_length=2048), AfterValidator(check_suite),
                  WithJsonSchema({"type": "string", "maxLength": 2048, "pattern": SUITE_PATTERN})]


class EvalSettings(JobModel):
    suites: list[Suite] = Field(min_length=1, max_length=32,
                                description="NAME (under data_root), NAME=URI, imagefolder:URI or "
                                            f"LABEL=imagefolder:URI; NAME one of {', '.join(EVAL_SUITE_NAMES)}")
    data_root: Uri | None = Field(None, description="folder holding <suite name>/ for each named suite")
    class_map: Uri | None = Field(None, description="imagefolder suites: JSON {folder: model class name} / CSV / txt")
    limit: PositiveInt | None = Field(None, description="at most N images per folder, a seeded sample (quick runs)")
    seed: Seed = Field(0, description="seed of limit's sample and of built corruptions")
    ci: Literal["wilson", "normal"] = Field("wilson", description="95% interval method")
    arch: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")] | None = Field(
        None, description="timm model name of a student checkpoint")
    class_names: Uri | None = Field(None, description="student output classes: 'imagenet' or a file (JSON list / "
                                                      "one per line)")
    pretrained: Uri | None = Field(None, description="CLIP weights: open_clip tag or checkpoint path")
    templates: Literal["openai", "simple"] | None = Field(None, description="zero-shot prompt templates "
                                                                           "(teacher default: openai)")
    overrides: Overrides = Field(default_factory=dict, description="preset overrides for a teacher:PRESET model, "
                                                                   'e.g. {"teacher.pretrained": "/ckpt/clip.pt"}')
    image_size: PositiveInt | None = Field(None, description="evaluation resolution (default: the model's own)")
    crop_pct: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="centre-crop fraction (default: timm's for students, 1.0 for CLIP)")
    batch_size: PositiveInt = Field(128, description="images per model batch")
    predictions: bool = Field(False, description="also write each image's prediction (results/<id>.predictions"
                                                 ".parquet: suite, source_id, label, prediction) for paired tests "
                                                 "between models on the same images")

    @field_validator("suites")
    @classmethod
    def _suite_locations(cls, suites: list[str]) -> list[str]:
        for suite in suites:
            label, _, location = suite.partition("=")
            if suite.startswith(IMAGEFOLDER):
                label, location = "", suite[len(IMAGEFOLDER):]
            elif location.startswith(IMAGEFOLDER):
                location = location[len(IMAGEFOLDER):]
                if label in EVAL_SUITE_NAMES:
                    raise ValueError(f"imagefolder suite {label!r} has the name of a paper suite; name it otherwise")
            if location:
                check_uri(location)
        return suites


class EvalJobConfig(EvalSettings):
    """One evaluation: the settings plus the model, where results go and how the work is spread."""

    model: Annotated[str, StringConstraints(min_length=1, max_length=2048), AfterValidator(check_uri),
                     WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 2048, "pattern": URI_PATTERN})] = Field(
        description="checkpoint path/URI, trainer run folder, teacher:PRESET or clip:MODEL")
    name: Annotated[str, StringConstraints(max_length=256), AfterValidator(check_plain)] | None = Field(
        None, description="row name in tables (default: from model)")
    out: Uri = Field(description="output folder (any fsspec URL): results/<id>.json and results.md")
    storage_options: JobStorageOptions
    build_c_from: Uri | None = Field(None, description="build the -C set from this ImageFolder (when the official "
                                                       "set is not available); reused if already built")
    c_out: Uri | None = Field(None, description="where the built -C set goes (default: <out>/imagenet-c-built)")
    c_corruptions: list[Annotated[str, StringConstraints(pattern=r"^[a-z_]+$")]] | None = Field(
        None, description="subset of the 15 corruptions (default: all)")
    c_severities: list[Annotated[int, Field(ge=1, le=5)]] | None = Field(None, description="subset of 1..5 "
                                                                                           "(default: all)")
    c_image_size: PositiveInt = Field(224, description="size of built corrupted images")
    c_workers: PositiveInt = Field(1, description="processes building the -C set")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1 (in-process evaluation)")
    bf16: bool = Field(True, description="bf16 autocast on CUDA (CLI: --no-bf16 for fp32)")
    workers: NonNegativeInt | None = Field(None, description="Ray actors (default: one per GPU of the cluster; "
                                                             "0: this process)")
    actor_cpus: Cpus = Field(1.0, description="CPUs per CPU-only actor")
    read_threads: PositiveInt = Field(8, description="image reading threads")
    ray_address: RayAddress
