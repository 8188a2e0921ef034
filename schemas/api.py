"""The control plane's API schemas (one family per entity) and the run records it keeps in the store.

Run configs are the *only* way a caller shapes a job: every field is typed and bounded, unknown fields are
refused (422 naming them), and the job's command line is built from these validated values alone.
Depends on nothing in this repository (schemas <- dad_core <- services).
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, field_validator

RUN_FORMAT = "dad-run"
RUN_STATUS_FORMAT = "dad-run-status"
RUN_FORMAT_VERSION = 1

RunKind = Literal["generate", "train", "eval"]
RUN_KINDS: tuple[str, ...] = ("generate", "train", "eval")
# Ray's JobStatus values, plus UNKNOWN for a run rebuilt from the store that Ray no longer knows.
RunStatus = Literal["PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED", "UNKNOWN"]
TERMINAL_STATUSES = frozenset({"STOPPED", "SUCCEEDED", "FAILED"})
ImageVariant = Literal["clean", "discretized", "adversarial"]

# Ids become folder names in the store and Ray submission ids: a strict alphabet, no '..', no '/'.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_URI_SCHEMES = ("file", "s3", "gs", "gcs", "az", "abfs", "abfss")


# The evaluator's suite names (services.evaluator.suites.SUITES; a test keeps the two equal). A suite item is
# `NAME`, `NAME=URI`, `imagefolder:URI` or `LABEL=imagefolder:URI`: nothing else, and never a leading dash.
EVAL_SUITE_NAMES: tuple[str, ...] = ("imagenet-val", "imagenet-v2", "imagenet-r", "imagenet-sketch", "imagenet-a",
                                     "imagenet-c", "stylized-imagenet")
IMAGEFOLDER = "imagefolder:"
# Control characters (C0 and DEL) are refused by the patterns themselves, so the OpenAPI schema and the
# validation agree on what is accepted; a location never starts with '-' (it could pass for a flag).
_TEXT = r"[^\x00-\x1f\x7f]"
_LOCATION = r"[^\x00-\x1f\x7f,-][^\x00-\x1f\x7f,]*"
URI_PATTERN = r"^[^\x00-\x1f\x7f-][^\x00-\x1f\x7f]*$"
SUITE_PATTERN = (rf"^(?:(?:{'|'.join(EVAL_SUITE_NAMES)})(?:={_LOCATION})?"
                 rf"|(?:[A-Za-z0-9][A-Za-z0-9_.+-]{{0,63}}=)?imagefolder:{_LOCATION})$")


def _check_id(value: str) -> str:
    if ".." in value:
        raise ValueError("must not contain '..'")
    return value


def _check_uri(value: str) -> str:
    """A data location: a path or an object-store URL. Never a flag, never a control character."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    if value.startswith("-"):
        raise ValueError("must not start with '-'")
    scheme, sep, _ = value.partition("://")
    if sep and scheme.lower() not in _URI_SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not allowed; use a path or one of {', '.join(_URI_SCHEMES)}")
    return value


def _check_plain(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


def _check_suite(value: str) -> str:
    if "," in value:
        raise ValueError("one suite per list item (no commas)")
    if value.startswith("-"):
        raise ValueError("must not start with '-'")
    _check_plain(value)
    if not re.fullmatch(SUITE_PATTERN, value):
        raise ValueError(f"a suite is NAME, NAME=URI, imagefolder:URI or LABEL=imagefolder:URI, with NAME one of "
                         f"{', '.join(EVAL_SUITE_NAMES)} (URIs never start with '-')")
    return value


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN), AfterValidator(_check_id)]
# The patterns go to the OpenAPI schema as they are; the validators enforce the same rules with messages
# that say which rule a value broke.
Uri = Annotated[str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_check_uri),
                WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 2048, "pattern": URI_PATTERN})]
Suite = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_check_suite),
                  WithJsonSchema({"type": "string", "maxLength": 2048, "pattern": SUITE_PATTERN})]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")]
OverrideKey = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$")]
OverrideText = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_check_plain),
                         WithJsonSchema({"type": "string", "maxLength": 1024, "pattern": rf"^{_TEXT}*$"})]
OverrideValue = Union[bool, Annotated[int, Field(ge=-2**63, le=2**63 - 1)], Annotated[float, Field(allow_inf_nan=False)],
                      OverrideText, None]
# Every integer is bounded (what a job can use, and what SQLite's 64-bit INTEGER holds), every float finite.
MAX_INT = 2**31 - 1
PositiveInt = Annotated[int, Field(ge=1, le=MAX_INT)]
Cpus = Annotated[float, Field(gt=0, le=1024)]
Gpus = Annotated[float, Field(ge=0, le=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _RunConfig(BaseModel):
    """A run config: unknown fields refused, and no coercion (`false` is not 0, `"5"` is not 5)."""

    model_config = ConfigDict(extra="forbid", strict=True)


# -- run configs -------------------------------------------------------------------------------------------
class GenerateRunConfig(_RunConfig):
    """`python -m services.generator`: make a sample set (clean + Q(x') rows) in the store."""

    source: Uri = Field(description="ImageFolder tree or Parquet dataset (path or s3:// URL)")
    preset: Name = Field("tiny", description="dad_core preset: teacher, discretizer, attack")
    overrides: dict[OverrideKey, OverrideValue] = Field(default_factory=dict,
                                                        description='preset overrides, e.g. {"attack.steps": 2}')
    set_name: Id | None = Field(None, description="the set's id (folder under sample-sets/); default: the run id")
    class_map: Uri | None = None
    source_format: Literal["auto", "imagefolder", "parquet"] = "auto"
    limit: PositiveInt | None = Field(None, description="only the first N items of the source")
    shard_size: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    num_actors: PositiveInt | None = None
    cpus_per_actor: Cpus | None = None
    gpus_per_actor: Gpus | None = None


class TrainRunConfig(_RunConfig):
    """`python -m services.trainer`: train a timm student; checkpoints and metrics go to the run folder."""

    source: Uri = Field(description="the clean training data (ImageFolder or Parquet)")
    sample_set: Id | None = Field(None, description="id of a sample set in the catalog (needed by dad, kd, ...)")
    student: Name | None = Field(None, description="a timm model name (default: the preset's student)")
    objective: Name = Field("dad", description="dad_core.losses objective: ce, kd, dist, ard, rslad, dad, ...")
    teacher_logits: Literal["stored", "online"] = "stored"
    preset: Name = "paper"
    overrides: dict[OverrideKey, OverrideValue] = Field(default_factory=dict)
    class_map: Uri | None = None
    val: Uri | None = None
    val_fraction: Annotated[float, Field(ge=0, lt=1)] | None = None
    epochs: PositiveInt = 90
    batch_size: PositiveInt = 128
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: Annotated[float, Field(ge=0, le=100)] | None = None
    weight_decay: Annotated[float, Field(ge=0, le=10)] | None = None
    warmup_epochs: Annotated[float, Field(ge=0, le=1000)] = 5.0
    bf16: bool = False
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    workers: PositiveInt = 1
    cpus_per_worker: Cpus = 1.0
    gpus_per_worker: Gpus = 0.0
    loader_workers: Annotated[int, Field(ge=0, le=64)] = 2
    max_steps_per_epoch: PositiveInt | None = None
    log_every: PositiveInt = 10


class EvalRunConfig(_RunConfig):
    """`python -m services.evaluator`: score a trained student on robustness suites."""

    model_run: Id | None = Field(None, description="a succeeded train run whose model to evaluate")
    model: Uri | None = Field(None, description="or a model location (exported student) in a store")
    suites: list[Suite] = Field(
        min_length=1, max_length=32, description="NAME (under data_root), NAME=URI, imagefolder:URI or "
                                                 f"LABEL=imagefolder:URI; NAME one of {', '.join(EVAL_SUITE_NAMES)}")
    data_root: Uri | None = None
    class_map: Uri | None = None
    limit: PositiveInt | None = Field(None, description="at most N images per folder (quick runs)")
    batch_size: PositiveInt | None = None

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
                _check_uri(location)
        return suites


class GenerateRunCreate(_Strict):
    id: Id = Field(description="client-chosen run id: a retry with the same id never starts a second job")
    kind: Literal["generate"]
    config: GenerateRunConfig


class TrainRunCreate(_Strict):
    id: Id
    kind: Literal["train"]
    config: TrainRunConfig


class EvalRunCreate(_Strict):
    id: Id
    kind: Literal["eval"]
    config: EvalRunConfig


RunCreate = Annotated[Union[GenerateRunCreate, TrainRunCreate, EvalRunCreate], Field(discriminator="kind")]
RUN_CONFIGS: dict[str, type[BaseModel]] = {"generate": GenerateRunConfig, "train": TrainRunConfig,
                                           "eval": EvalRunConfig}


# -- runs ---------------------------------------------------------------------------------------------------
class RunPublic(BaseModel):
    id: str
    kind: RunKind
    status: RunStatus
    config: dict[str, Any]
    output_uri: str
    sample_set_id: str | None = None
    message: str = ""
    submitted_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunsPublic(BaseModel):
    data: list[RunPublic]
    count: int


class RunDetail(RunPublic):
    entrypoint: str
    metrics: list[dict[str, Any]] = Field(default_factory=list, description="training metric lines so far")
    progress: dict[str, Any] | None = Field(None, description="generator's live status (_status.json)")
    log_tail: str | None = None
    log_error: str | None = Field(None, description="why the log tail is missing (Ray unreachable, ...)")


# -- sample sets ----------------------------------------------------------------------------------------------
class SampleSetPublic(BaseModel):
    id: str
    uri: str
    created_at: datetime
    preset: str
    num_rows: int
    num_items: int
    accepted: int
    acceptance_rate: float
    num_classes: int


class SampleSetsPublic(BaseModel):
    data: list[SampleSetPublic]
    count: int


class ClassStatistics(BaseModel):
    label: int
    name: str
    items: int
    accepted: int
    acceptance_rate: float


class SampleSetDetail(SampleSetPublic):
    lineage: dict[str, Any] = Field(description="source, teacher, discretizer, attack config, run")
    statistics: dict[str, Any]
    class_names: list[str]
    per_class: list[ClassStatistics]
    variants: list[ImageVariant] = Field(description="image variants stored for each item")


class TopK(BaseModel):
    label: int
    name: str
    probability: float


class SampleBrief(BaseModel):
    id: str
    kind: str
    prediction: int
    confidence: float
    accepted: bool | None = Field(description="adversarial rows: the teacher accepted Q(x'); null on other kinds")
    top5: list[TopK]


class SamplePublic(SampleBrief):
    set_id: str
    source_id: str
    label: int
    class_name: str
    images: dict[str, str | None] = Field(description="URL of each variant (clean, discretized, adversarial); "
                                                      "null when the set does not store it")
    pair: SampleBrief | None = Field(None, description="the same source item's row of the other kind")


class SamplesPublic(BaseModel):
    data: list[SamplePublic]
    count: int
    offset: int
    limit: int


# -- results ---------------------------------------------------------------------------------------------------
class ResultPublic(BaseModel):
    run_id: str
    model: str
    suite: str
    metric: str
    value: float
    lower_is_better: bool
    created_at: datetime
    details: dict[str, Any] = Field(default_factory=dict)


class ResultsPublic(BaseModel):
    data: list[ResultPublic]
    count: int
    suites: list[str]


# -- records the control plane writes into the store (so the catalog can be rebuilt) -----------------------------
class RunRecord(_Strict):
    """`<store>/runs/<id>/run.json`: what was submitted, written before the catalog row."""

    format: Literal["dad-run"] = RUN_FORMAT
    format_version: int = RUN_FORMAT_VERSION
    id: Id
    kind: RunKind
    config: dict[str, Any]
    config_sha256: str
    entrypoint: list[str]
    output_uri: str
    sample_set_id: str | None = None
    submitted_at: datetime


class RunStatusRecord(_Strict):
    """`<store>/runs/<id>/status.json`: the last status the control plane saw (terminal ones at least)."""

    format: Literal["dad-run-status"] = RUN_STATUS_FORMAT
    format_version: int = RUN_FORMAT_VERSION
    status: RunStatus
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime


def is_valid_id(value: str) -> bool:
    return bool(re.fullmatch(ID_PATTERN, value)) and ".." not in value
