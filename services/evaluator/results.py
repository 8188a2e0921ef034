"""Evaluation results on any fsspec URL: one JSON per evaluation, in a folder the control plane lists.

Layout under `--out`:

    <out>/results/<evaluation id>.json   one evaluation (format "dad-evaluation", version 1), written
                                         atomically; the folder is the registry: list it, read each file
    <out>/results.md                     the paper-style table of every evaluation in <out>/results/,
                                         rewritten after each evaluation
    <out>/results/<id>.predictions.parquet  with --predictions: suite, source_id, label, prediction per image

The format is schemas.results.EvaluationResult. A result file holds `model` (what was evaluated), `suites` (per suite: top-1 %, 95% interval, number of
images, skipped images with reasons, per-class accuracy; ImageNet-C adds top-1 per corruption and severity,
CE per corruption and mCE) and `metrics`, the same headline numbers as flat rows
`{suite, metric, value, lower_is_better, ci95}` ready for the control plane's results table.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from services.evaluator.models import ModelSpec
from services.storage import (StorageError, atomic_write_bytes, describe_storage_error, join, open_filesystem,
                              storage_errors, to_uri)

from schemas.results import (  # noqa: F401 - the format, defined once for the evaluator and the control plane
    RESULT_FORMAT, RESULT_VERSION, RESULTS_DIR, TABLE_NAME, parse_evaluation,
)


PREDICTIONS_SUFFIX = ".predictions.parquet"


class ResultError(ValueError):
    """A result file that is not a readable dad-evaluation of a known version; names the file."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80] or "model"


def _file_sha256(path: str | None) -> str | None:
    if not path or not os.path.isfile(path):
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe_model(spec: ModelSpec) -> dict[str, Any]:
    """What was evaluated, enough to find it again: never the 1,000 class names, their hash instead."""
    d = dataclasses.asdict(spec)
    d.pop("storage_options")  # may hold credentials
    names = d.pop("class_names")
    d["num_classes"] = len(names) if names else None
    d["class_names"] = names if names and len(names) <= 100 else None
    d["class_names_sha256"] = hashlib.sha256(json.dumps(names).encode()).hexdigest() if names else None
    d["checkpoint_sha256"] = _file_sha256(spec.checkpoint)
    return d


def headline_metrics(suites: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per suite: top-1 (%), or mCE (%) for ImageNet-C; suites without a number are left out."""
    rows = []
    for label, s in suites.items():
        value = s.get("mce") if s.get("metric") == "mCE" else s.get("top1")
        if value is not None:
            rows.append({"suite": label, "metric": s["metric"], "value": value,
                         "lower_is_better": bool(s.get("lower_is_better")),
                         "ci95": s.get("ci95") if s["metric"] == "top1" else None,
                         "num_images": s.get("num_images")})
    return rows


def make_result(spec: ModelSpec, suites: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any],
                started: datetime, finished: datetime) -> dict[str, Any]:
    created = finished.astimezone(timezone.utc)
    eval_id = f"{_slug(spec.label)}-{created.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
    return {"format": RESULT_FORMAT, "version": RESULT_VERSION, "id": eval_id, "name": spec.label,
            "created_at": created.isoformat(), "duration_s": (finished - started).total_seconds(),
            "model": describe_model(spec), "settings": dict(settings), "suites": dict(suites),
            "metrics": headline_metrics(suites)}


def write_result(out_uri: str, result: Mapping[str, Any], storage_options: Mapping[str, Any] | None = None) -> str:
    """Write `<out>/results/<id>.json`; returns its URL."""
    fs, root = open_filesystem(out_uri, storage_options)
    path = join(root, RESULTS_DIR, f"{result['id']}.json")
    atomic_write_bytes(fs, path, json.dumps(result, indent=2, allow_nan=False).encode())
    return to_uri(fs, path)


def write_predictions(out_uri: str, result_id: str, predictions: Mapping[str, Sequence[tuple[str, int, int]]],
                      storage_options: Mapping[str, Any] | None = None) -> str:
    """Write `<out>/results/<id>.predictions.parquet` (suite, source_id, label, prediction; -1 = a class the
    folder lacks): what a paired test between two models on the same images needs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [(suite, *p) for suite, preds in predictions.items() for p in preds]
    table = pa.table({"suite": [r[0] for r in rows], "source_id": [r[1] for r in rows],
                      "label": pa.array([r[2] for r in rows], pa.int64()),
                      "prediction": pa.array([r[3] for r in rows], pa.int64())})
    fs, root = open_filesystem(out_uri, storage_options)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    path = join(root, RESULTS_DIR, f"{result_id}{PREDICTIONS_SUFFIX}")
    atomic_write_bytes(fs, path, sink.getvalue().to_pybytes())
    return to_uri(fs, path)


def read_predictions(result_uri: str, storage_options: Mapping[str, Any] | None = None):
    """The predictions written next to a result JSON (a pyarrow Table), or FileNotFoundError."""
    import pyarrow.parquet as pq

    fs, path = open_filesystem(result_uri, storage_options)
    path = path.removesuffix(".json") + PREDICTIONS_SUFFIX
    with fs.open(path, "rb") as f:
        return pq.read_table(f)


def check_result(data: Any, name: str) -> dict[str, Any]:
    """`data` if it is a dad-evaluation this code reads (schemas.results.EvaluationResult), else ResultError."""
    try:
        parse_evaluation(data, name)
    except ValueError as e:
        raise ResultError(str(e)) from None
    return data


def read_result(uri: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    fs, path = open_filesystem(uri, storage_options)
    try:
        data = json.loads(fs.cat_file(path))
    except FileNotFoundError as e:
        raise ResultError(f"result {uri!r} does not exist") from e
    except (OSError, ValueError) as e:
        raise ResultError(f"cannot read result {uri!r}: {e}") from e
    return check_result(data, uri)


def list_results(uri: str, storage_options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every result under `uri`: a result file, an --out folder (its results/), or a results/ folder itself.

    Oldest first, so later evaluations of the same model override earlier ones in tables.
    """
    fs, path = open_filesystem(uri, storage_options)
    try:
        if fs.isfile(path):
            return [read_result(uri, storage_options)]
        folder = join(path, RESULTS_DIR) if fs.isdir(join(path, RESULTS_DIR)) else path
        if not fs.isdir(folder):
            raise ResultError(f"no results at {uri!r}")
        files = sorted(p for p in fs.find(folder, maxdepth=1) if p.endswith(".json"))
    except storage_errors() as e:
        raise StorageError(f"cannot list results at {uri!r}: {describe_storage_error(uri, e)}") from e
    results = [read_result(to_uri(fs, p), storage_options) for p in files]
    return sorted(results, key=lambda r: r["created_at"])
