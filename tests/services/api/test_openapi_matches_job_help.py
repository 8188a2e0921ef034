"""`--help` of each job and the API's OpenAPI schema list the same fields: both come from schemas.jobs."""
from __future__ import annotations

import re

import pytest

from schemas.api import EvalRunConfig, GenerateRunConfig, TrainRunConfig
from schemas.jobs import EvalJobConfig, FitQJobConfig, GenerateJobConfig, TrainJobConfig
from services.jobs.cli import flag_name

# Fields of the API's run configs that are catalog ids, turned into locations by the control plane.
API_ONLY = {"set_name", "sample_set", "model_run", "model"}


def _jobs():
    from services.evaluator import cli as evaluator
    from services.generator import cli as generator
    from services.trainer import cli as trainer
    from services.vq_trainer import cli as vq_trainer

    return {"generate": (GenerateJobConfig, GenerateRunConfig, generator),
            "train": (TrainJobConfig, TrainRunConfig, trainer),
            "eval": (EvalJobConfig, EvalRunConfig, evaluator),
            "fit-q": (FitQJobConfig, None, vq_trainer)}


def _help_flags(module) -> set[str]:
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", module.build_parser().format_help()))


@pytest.mark.parametrize("kind", ["generate", "train", "eval", "fit-q"])
def test_help_lists_every_field_of_the_jobs_config(kind):
    model, _, module = _jobs()[kind]
    flags = {flag_name(f, module.FLAGS) for f in model.model_fields}
    assert flags <= _help_flags(module)
    assert "--config" in _help_flags(module)


@pytest.mark.parametrize("kind", ["generate", "train", "eval"])
def test_openapi_run_config_lists_the_fields_help_lists(client, kind):
    model, run_config, module = _jobs()[kind]
    schema = client.get("/openapi.json").json()["components"]["schemas"][run_config.__name__]
    api_fields = set(schema["properties"])
    assert api_fields - API_ONLY <= set(model.model_fields)  # every API field is a field of the job...
    assert {flag_name(f, module.FLAGS) for f in api_fields - API_ONLY} <= _help_flags(module)  # ...and a flag
    settings = {f for f in model.model_fields if f in run_config.model_fields} - API_ONLY
    assert api_fields - API_ONLY == settings
    for name in settings:  # same defaults and descriptions on both sides
        field, prop = model.model_fields[name], schema["properties"][name]
        if not field.is_required() and field.default_factory is None:
            assert prop.get("default") == field.default, name
        assert prop.get("description") == field.description, name
    assert set(schema.get("required", [])) == {f for f in settings if model.model_fields[f].is_required()}


def test_openapi_lists_the_registrys_objectives_and_presets(client):
    from dad_core import list_presets
    from dad_core.objectives import list_objectives

    props = client.get("/openapi.json").json()["components"]["schemas"]["TrainRunConfig"]["properties"]
    assert props["objective"]["examples"] == list_objectives()
    assert props["preset"]["examples"] == list_presets()
