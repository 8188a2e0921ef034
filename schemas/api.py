"""The control plane's API schemas (one family per entity) and the run records it keeps in the store.

Run configs are the *only* way a caller shapes a job. Each is its job's settings model (`schemas.jobs`)
plus catalog ids, so a run config the API accepts is one the job accepts: every field is typed and
bounded, the job's cross-field rules apply, unknown fields are refused (422 naming them), and the job
reads the config the control plane builds from these validated values alone (`--config run.json`).
Depends on nothing in this repository (schemas <- dad_core <- services).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from schemas.fields import (  # noqa: F401 - re-exported: the API's value types are the jobs' ones
    ID_PATTERN, MAX_INT, URI_PATTERN, Id, Uri, is_valid_id,
)
from schemas.jobs import (
    EvalJobConfig, EvalSettings, GenerateJobConfig, GenerateSettings, TrainJobConfig, TrainSettings,
)
from schemas.perturbation import PerturbationSummary
from schemas.jobs.evaluate import EVAL_SUITE_NAMES, IMAGEFOLDER, SUITE_PATTERN  # noqa: F401 - re-exported
from schemas.jobs.train import require_sample_set

RUN_FORMAT = "dad-run"
RUN_STATUS_FORMAT = "dad-run-status"
RUN_FORMAT_VERSION = 1

# Ray's JobStatus values, plus UNKNOWN for a run rebuilt from the store that Ray no longer knows.
RunStatus = Literal["PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED", "UNKNOWN"]
TERMINAL_STATUSES = frozenset({"STOPPED", "SUCCEEDED", "FAILED"})
ImageVariant = Literal["clean", "discretized", "adversarial"]

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- run configs: each job's settings (schemas.jobs), plus the catalog ids the control plane turns into -------
# -- locations. The control plane builds the job's config from these and nothing else. -----------------------
class GenerateRunConfig(GenerateSettings):
    """`python -m services.generator`: make a sample set (clean + Q(x') rows) in the store."""

    set_name: Id | None = Field(None, description="the set's id (folder under sample-sets/); default: the run id")


class TrainRunConfig(TrainSettings):
    """`python -m services.trainer`: train a timm student; checkpoints and metrics go to the run folder."""

    sample_set: Id | None = Field(None, validate_default=True,
                                  description="id of a sample set in the catalog; required by every objective "
                                              "that uses Q(x') or stored teacher logits (dad, kd, ...)")

    _sample_set_if_needed = field_validator("sample_set")(require_sample_set)


class EvalRunConfig(EvalSettings):
    """`python -m services.evaluator`: score a trained student on robustness suites."""

    model_run: Id | None = Field(None, description="a succeeded train run whose model to evaluate")
    model: Uri | None = Field(None, description="or a model location (exported student) in a store")

    @model_validator(mode="after")
    def _one_model(self):
        if (self.model_run is None) == (self.model is None):
            raise ValueError("give exactly one of model_run and model")
        return self


@dataclass(frozen=True)
class JobKind:
    """One kind of job: what a caller sends (run config), what the job reads (job config), and where it runs."""

    run_config: type[BaseModel]
    job_config: type[BaseModel]
    module: str                  # `python -m <module> --config <run.json>`


# The one table of job kinds: the API's request bodies, run kinds, the job builders (services.api.entrypoints)
# and every launcher derive from it.
JOB_KINDS: dict[str, JobKind] = {
    "generate": JobKind(GenerateRunConfig, GenerateJobConfig, "services.generator"),
    "train": JobKind(TrainRunConfig, TrainJobConfig, "services.trainer"),
    "eval": JobKind(EvalRunConfig, EvalJobConfig, "services.evaluator"),
}
RunKind = Literal[tuple(JOB_KINDS)]  # type: ignore[valid-type]  # Literal["generate", "train", "eval"]


def _run_create(kind: str, job: JobKind) -> type[BaseModel]:
    return create_model(f"{kind.capitalize()}RunCreate", __base__=_Strict, __module__=__name__,
                        id=(Id, Field(description="client-chosen run id: a retry with the same id never starts "
                                                  "a second job")),
                        kind=(Literal[kind], ...), config=(job.run_config, ...))


RunCreate = Annotated[Union[tuple(_run_create(k, j) for k, j in JOB_KINDS.items())],  # type: ignore[misc]
                      Field(discriminator="kind")]


def run_config_sha256(kind: str, config: dict[str, Any]) -> str:
    """The identity of a run's request: the API's idempotency check, the demo's and the experiments' records."""
    text = json.dumps({"kind": kind, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


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
    mlflow: dict[str, Any] | None = Field(None, description="the run's MLflow run when the job was tracked "
                                                            "(tracking_uri, experiment_id, run_id, url); train runs")


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
    indexing: bool = Field(False, description="the catalog is still indexing the set: its pages, totals and "
                                              "per-class counts cover the first `indexed_rows` rows so far")
    indexed_rows: int = Field(0, description="rows indexed so far (= num_rows once indexing is done)")


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
    diagnostics: PerturbationSummary | None = Field(
        None, description="what the attack changed, over every Q(x') (format v4; null for older sets): per measure "
                          "its mean, quantiles, min and max, and per class the means of a few (README: Reading the "
                          "diagnostics)")


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
    perturbation: dict[str, float | None] | None = Field(
        None, description="the diagnostics of this item's Q(x'): what the attack changed (null: set before format v4)")


class SamplesPublic(BaseModel):
    data: list[SamplePublic]
    count: int = Field(description="rows matching the filters; with a confidence range or a source search, "
                                   "counted up to a cap (count_exact is then false)")
    count_exact: bool = True
    offset: int
    limit: int
    next: str | None = Field(None, description="pass as `after` for the next page (the same time at any depth); "
                                               "null on the last page")


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
    job: dict[str, Any] | None = Field(None, description="the job's own config (schemas.jobs), which the job "
                                                         "reads with --config; storage credentials never in it")


class RunStatusRecord(_Strict):
    """`<store>/runs/<id>/status.json`: the last status the control plane saw (terminal ones at least)."""

    format: Literal["dad-run-status"] = RUN_STATUS_FORMAT
    format_version: int = RUN_FORMAT_VERSION
    status: RunStatus
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
