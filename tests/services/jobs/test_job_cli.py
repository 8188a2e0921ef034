"""Job command lines from the config models: typed `--set` values, string storage options in every job."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("item, value", [
    ("attack.steps=2", 2), ("attack.step_size=1e-05", 1e-05), ("attack.epsilon=null", None),
    ("attack.through_discretizer=true", True), ("teacher.pretrained=/ckpt/a.pt", "/ckpt/a.pt"),
    ('teacher.pretrained="a b"', "a b"), ("teacher.model=2", "2"),  # a text field keeps text that reads as a number
    ("distill.temperature=2", 2),
])
def test_set_values_are_read_once_as_typed_values(item, value):
    from dad_core.presets import parse_override

    key, parsed = parse_override(item)
    assert key == item.split("=")[0] and parsed == value and type(parsed) is type(value)


def test_overrides_are_checked_against_the_presets_field_types():
    from services.jobs.presets import resolve_preset, typed_overrides

    assert resolve_preset("tiny", {"attack.step_size": 1e-05, "distill.temperature": 2}).distill.temperature == 2.0
    for bad, words in (({"attack.step_size": "1e-05"}, "attack.step_size: expected float"),
                       ({"attack.steps": 1.5}, "attack.steps: expected int"),
                       ({"attack.stepz": 1}, "attack.stepz: unknown preset field; known: attack.delta, attack.epsilon")):
        with pytest.raises(ValueError, match=words):
            typed_overrides(bad)


REQUIRED = {"generator": ["--source", "/d"], "trainer": ["--source", "/d", "--out", "/o", "--objective", "ce"],
            "evaluator": ["--model", "/m", "--out", "/o", "--suites", "imagenet-r"],
            "vq_trainer": ["--source", "/d", "--out", "/o"]}


@pytest.mark.parametrize("module", sorted(REQUIRED))
def test_storage_options_are_strings_in_every_job(module):
    """The trainer used to read them as YAML (anon=true became True) while the other jobs kept strings."""
    import importlib

    from schemas.jobs import EvalJobConfig, FitQJobConfig, GenerateJobConfig, TrainJobConfig
    from services.jobs.cli import job_config_from_args

    cli = importlib.import_module(f"services.{module}.cli")
    model = {"generator": GenerateJobConfig, "trainer": TrainJobConfig, "evaluator": EvalJobConfig,
             "vq_trainer": FitQJobConfig}[module]
    args = cli.build_parser().parse_args(REQUIRED[module] + ["--storage-option", "anon=true",
                                                             "--storage-option", "max_pool=10"])
    config = job_config_from_args(model, args, cli.FLAGS)
    assert config.storage_options == {"anon": "true", "max_pool": "10"}


@pytest.mark.parametrize("module", sorted(REQUIRED))
def test_a_missing_or_wrong_config_file_exits_2_naming_it(module, tmp_path, capsys):
    import importlib

    main = importlib.import_module(f"services.{module}.cli").main
    assert main(["--config", str(tmp_path / "run.json")]) == 2
    assert "run.json does not exist" in capsys.readouterr().err
    (tmp_path / "run.json").write_text('{"format": "dad-run", "id": "r"}')
    assert main(["--config", str(tmp_path / "run.json")]) == 2
    assert "holds no job config" in capsys.readouterr().err
