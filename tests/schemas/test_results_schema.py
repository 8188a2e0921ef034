"""Evaluation results and training metrics: typed, versioned formats the control plane reads without the
evaluator or the trainer."""
import json

import pytest

from schemas.results import METRICS_VERSION, parse_evaluation, parse_metrics

RESULT = {"format": "dad-evaluation", "version": 1, "id": "m-1", "name": "m", "created_at": "2026-01-01T00:00:00Z",
          "suites": {"imagenet-r": {"top1": 50.0, "metric": "top1"}},
          "metrics": [{"suite": "imagenet-r", "metric": "top1", "value": 50.0, "lower_is_better": False,
                       "ci95": [45.0, 55.0], "num_images": 10}]}


def test_a_result_file_parses_and_a_wrong_version_or_field_is_named():
    result = parse_evaluation(json.dumps(RESULT).encode(), "r.json")
    assert result.metrics[0].value == 50.0 and result.suites["imagenet-r"]["top1"] == 50.0
    with pytest.raises(ValueError, match="version 2"):
        parse_evaluation({**RESULT, "version": 2}, "r.json")
    with pytest.raises(ValueError, match="not a dad-evaluation"):
        parse_evaluation({"format": "other"}, "r.json")
    with pytest.raises(ValueError, match="metrics.0.value"):
        parse_evaluation({**RESULT, "metrics": [{**RESULT["metrics"][0], "value": "high"}]}, "r.json")


def test_metrics_lines_of_another_version_or_type_are_skipped():
    lines = [json.dumps({"version": METRICS_VERSION, "type": "step", "step": 1, "loss": 1.0}),
             json.dumps({"type": "step", "step": 2, "loss": 0.5}),          # written before versions: version 1
             json.dumps({"version": 2, "type": "step", "step": 3}),         # a future format: not guessed at
             json.dumps({"type": "gossip", "step": 4}), '{"type": "st']
    assert [r["step"] for r in parse_metrics(lines)] == [1, 2]


def test_the_api_modules_do_not_import_the_evaluator_or_the_trainer():
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "services" / "api"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("services.evaluator",
                                                                                     "services.trainer")):
                offenders.append(f"{path.name}: {node.module}")
    assert not offenders
