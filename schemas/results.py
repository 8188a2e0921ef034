"""On-disk formats of job outputs the control plane reads, typed and versioned so that it reads them
without importing the evaluator or the trainer (as it reads the sample set's manifest).

    <eval run>/results/<id>.json   EvaluationResult  (format "dad-evaluation", version 1), by services.evaluator
    <train run>/metrics.jsonl      one MetricRecord per line (version 1), by services.trainer
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Iterable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

RESULT_FORMAT, RESULT_VERSION = "dad-evaluation", 1
RESULTS_DIR, TABLE_NAME = "results", "results.md"
METRICS_NAME, METRICS_VERSION = "metrics.jsonl", 1


# -- evaluation results -----------------------------------------------------------------------------------------
class HeadlineMetric(BaseModel):
    """One number per suite: top-1 (%), or mCE (%) for ImageNet-C."""

    model_config = ConfigDict(extra="allow")

    suite: str
    metric: str
    value: float
    lower_is_better: bool = False
    ci95: list[float] | None = None
    num_images: int | None = None


class EvaluationResult(BaseModel):
    """One evaluation of one model on some suites (services.evaluator.results writes it)."""

    model_config = ConfigDict(extra="allow")

    format: Literal["dad-evaluation"] = RESULT_FORMAT
    version: Literal[1] = RESULT_VERSION
    id: str
    name: str
    created_at: datetime
    duration_s: float | None = None
    model: dict[str, Any] = Field(default_factory=dict, description="what was evaluated (never credentials)")
    settings: dict[str, Any] = Field(default_factory=dict)
    suites: dict[str, dict[str, Any]] = Field(description="per suite: top-1, interval, images, per class, ...")
    metrics: list[HeadlineMetric] = Field(default_factory=list)


def parse_evaluation(data: bytes | str | dict, name: str) -> EvaluationResult:
    """ValueError naming `name` unless `data` is a dad-evaluation of a version this code reads."""
    try:
        raw = json.loads(data) if isinstance(data, (bytes, str)) else data
    except ValueError as e:
        raise ValueError(f"{name!r} is not JSON: {e}") from None
    if not isinstance(raw, dict) or raw.get("format") != RESULT_FORMAT:
        raise ValueError(f"{name!r} is not a {RESULT_FORMAT} result file")
    if raw.get("version") != RESULT_VERSION:
        raise ValueError(f"{name!r} has result version {raw.get('version')!r}; this code reads {RESULT_VERSION}")
    try:
        return EvaluationResult.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        raise ValueError(f"{name!r}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


# -- training metrics -----------------------------------------------------------------------------------------
class _Metric(BaseModel):
    model_config = ConfigDict(extra="allow")  # steps carry each loss term of their objective

    version: Literal[1] = METRICS_VERSION
    epoch: int | None = None
    step: int | None = None
    time: float | None = None


class EventRecord(_Metric):
    type: Literal["event"]
    event: str                              # start | resume | end


class StepRecord(_Metric):
    type: Literal["step"]
    loss: float | None = None
    lr: float | None = None


class EpochRecord(_Metric):
    type: Literal["epoch"]
    val_top1: float | None = None
    train_loss: float | None = None


MetricRecord = Annotated[Union[EventRecord, StepRecord, EpochRecord], Field(discriminator="type")]
_METRIC = TypeAdapter(MetricRecord)


def parse_metrics(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Records in order, keeping only the last one per step and per epoch (a resumed run logs an epoch's steps
    again); lines cut by a kill, and records of another version or type, are skipped."""
    records: dict[tuple, dict[str, Any]] = {}
    for n, line in enumerate(lines):
        try:
            rec = json.loads(line)
            _METRIC.validate_python(rec)  # the record is kept as written
        except ValueError:  # a line cut by a kill, or not a record this code reads
            continue
        kind = rec["type"]
        key = (kind, rec.get("step")) if kind == "step" else (kind, rec.get("epoch")) if kind == "epoch" else (n,)
        records.pop(key, None)  # re-insert so the order is that of the latest occurrence
        records[key] = rec
    return list(records.values())
