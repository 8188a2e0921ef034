"""One definition of each job's config: whatever the API accepts, the job accepts and resolves to the same
values its command line gives for the same flags; whatever the API refuses, the command line refuses too.

Configs are generated (hypothesis) around the fields with cross-field rules: objective x teacher logits x
sample set x augmentation, preset overrides of every type (right and wrong), numbers at and past bounds.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from dad_core.objectives import list_objectives
from schemas.api import GenerateRunConfig, RunRecord, TrainRunConfig
from schemas.jobs import GenerateSettings, TrainSettings
from services.api.entrypoints import build_job
from services.api.store import Store
from services.jobs.cli import flag_name

def _optional(strategy):
    return st.one_of(st.just(None), strategy)


# Mostly valid overrides of every value type, and now and then one of the wrong type or an unknown field.
GOOD_OVERRIDES = st.sampled_from([("attack.steps", 2), ("attack.step_size", 1e-05), ("distill.temperature", 2),
                                  ("distill.temperature", 0.5), ("teacher.pretrained", "/ckpt/a b.pt"),
                                  ("attack.epsilon", 0.05), ("attack.grad", "l2"), ("image_size", 32),
                                  ("attack.through_discretizer", True)])
BAD_OVERRIDES = st.sampled_from([("attack.step_size", "1e-05"), ("attack.steps", 1.5), ("attack.seed", "0"),
                                 ("attack.nope", 1), ("attack.epsilon", None), ("distill.temperature", -1),
                                 ("attack.grad", "up"), ("image_size", True)])
OVERRIDES = st.lists(st.one_of(GOOD_OVERRIDES, GOOD_OVERRIDES, GOOD_OVERRIDES, BAD_OVERRIDES), max_size=3).map(dict)
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


TRAIN = st.fixed_dictionaries({"source": st.just("/data/train")}, optional={
    "objective": st.sampled_from(list_objectives() * 3 + ["nope"]),
    "teacher_logits": st.sampled_from(["stored", "online"]),
    "preset": st.sampled_from(["tiny", "paper"] * 4 + ["nope"]),
    "overrides": OVERRIDES,
    "sample_set": st.just("set-1"),
    "student": st.just("test_resnet"),
    "randaugment": st.sampled_from(["rand-m9-mstd0.5"] * 3 + ["autoaug"]),
    "mixup": st.floats(0, 1, allow_nan=False),
    "hflip": st.booleans(),
    "bf16": st.booleans(),
    "label_smoothing": st.floats(0, 0.999, allow_nan=False),
    "epochs": st.integers(0, 300),
    "batch_size": st.integers(1, 512),
    "lr": _optional(st.floats(0, 2, allow_nan=False)),
    "optimizer": st.sampled_from(["sgd", "adamw"] * 3 + ["lamb"]),
    "val_fraction": st.floats(0, 1),
    "cpus_per_worker": st.floats(0, 4),
    "max_steps_per_epoch": _optional(st.integers(0, 10)),
})

GENERATE = st.fixed_dictionaries({"source": st.just("/data/src")}, optional={
    "preset": st.sampled_from(["tiny", "paper"] * 4 + ["nope"]),
    "overrides": OVERRIDES,
    "limit": _optional(st.integers(0, 100)),
    "shard_size": st.integers(0, 512),
    "batch_size": st.integers(0, 64),
    "cpus_per_actor": st.floats(0, 4),
    "gpus_per_actor": st.floats(-1, 2),
    "prefetch_shards": st.integers(-1, 4),
    "source_format": st.sampled_from(["auto", "parquet", "zip"]),
})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(str(tmp_path_factory.mktemp("store")), {"endpoint_url": "http://127.0.0.1:9000"})


def flags_for(settings_model: type[BaseModel], config: dict, cli_flags: dict) -> list[str]:
    """The command line a user would type for the same settings (typed values written as JSON / numbers)."""
    argv: list[str] = []
    for field, value in config.items():
        if field not in settings_model.model_fields:
            continue
        flag = flag_name(field, cli_flags)
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif field == "overrides":
            for key, v in value.items():
                argv += [flag, f"{key}={json.dumps(v)}"]
        elif value is not None:
            argv += [f"{flag}={value}"]  # `=`: argparse would take -1e-05 for a flag
    return argv


def assert_refused(parse) -> None:
    """The job refuses the config too: argparse's exit 2 (a choice, a type) or the model's ValueError."""
    try:
        parse()
    except SystemExit as e:
        assert e.code == 2
    except ValueError:
        pass
    else:
        pytest.fail("the API refused a config that the job's command line accepts")


def _record(store: Store, run_id: str, kind: str, run_config: BaseModel, job) -> None:
    store.write_run_record(RunRecord(id=run_id, kind=kind, config=run_config.model_dump(mode="json"),
                                     config_sha256="x", entrypoint=job.argv, output_uri=job.output_uri,
                                     submitted_at=datetime.now(timezone.utc), job=job.job.model_dump(mode="json")))


@settings(PROPERTY, max_examples=150)
@given(config=TRAIN)
def test_train_configs_the_api_accepts_are_the_ones_the_trainer_accepts_with_the_same_values(config, store):
    from services.trainer.cli import FLAGS, build_parser, config_from_args
    from services.trainer.launcher import resolve

    samples = store.manifest_uri("set-1")
    argv = flags_for(TrainSettings, config, FLAGS) + ["--out", store.run_uri("t"), "--no-progress",
                                                      "--storage-option", "endpoint_url=http://127.0.0.1:9000"]
    argv += ["--samples", samples] if config.get("sample_set") else []
    try:
        run_config = TrainRunConfig.model_validate(config)
    except ValidationError:
        event("refused")
        assert_refused(lambda: config_from_args(build_parser().parse_args(argv)))
        return
    event("accepted")
    job = build_job("train", "t", run_config, store, "python")  # builds: no error
    _record(store, "t", "train", run_config, job)
    from_record = config_from_args(build_parser().parse_args(job.argv[3:]))
    from_flags = config_from_args(build_parser().parse_args(argv))
    assert from_record == from_flags
    (cfg_a, preset_a), (cfg_b, preset_b) = resolve(from_record), resolve(from_flags)
    assert cfg_a == cfg_b and preset_a == preset_b
    from_preset = ("student", "student_init")  # resolve() fills them from the preset when not given
    assert {k: getattr(cfg_a, k) for k in TrainSettings.model_fields if k not in from_preset} == \
        {k: getattr(run_config, k) for k in TrainSettings.model_fields if k not in from_preset}


@PROPERTY
@given(config=GENERATE)
def test_generate_configs_the_api_accepts_are_the_ones_the_generator_accepts_with_the_same_values(config, store):
    from services.generator.cli import FLAGS, build_parser, config_from_args
    from services.jobs.presets import resolve_preset

    argv = flags_for(GenerateSettings, config, FLAGS) + ["--out", store.sample_sets_uri(), "--name", "g",
                                                         "--no-progress", "--storage-option",
                                                         "endpoint_url=http://127.0.0.1:9000"]
    try:
        run_config = GenerateRunConfig.model_validate(config)
    except ValidationError:
        event("refused")
        assert_refused(lambda: config_from_args(build_parser().parse_args(argv)))
        return
    event("accepted")
    job = build_job("generate", "g", run_config, store, "python")
    _record(store, "g", "generate", run_config, job)
    from_record = config_from_args(build_parser().parse_args(job.argv[3:]))
    from_flags = config_from_args(build_parser().parse_args(argv))
    assert from_record == from_flags
    assert resolve_preset(from_record.preset, from_record.overrides) == \
        resolve_preset(from_flags.preset, from_flags.overrides)
    assert {k: getattr(from_record, k) for k in GenerateSettings.model_fields} == \
        {k: getattr(run_config, k) for k in GenerateSettings.model_fields}


def test_list_flags_take_spaces_and_commas_and_the_config_file_takes_json(tmp_path):
    from schemas.jobs import EvalJobConfig
    from services.evaluator.cli import FLAGS, build_parser
    from services.jobs.cli import job_config_from_args

    def parse(*argv):
        return job_config_from_args(EvalJobConfig, build_parser().parse_args(list(argv)), FLAGS)

    cfg = parse("--model", "teacher:tiny", "--out", "/o", "--suites", "imagenet-r,imagenet-a", "imagenet-c",
                "--c-severities", "1,5", "--c-corruptions", "fog")
    assert cfg.suites == ["imagenet-r", "imagenet-a", "imagenet-c"] and cfg.c_severities == [1, 5]
    (tmp_path / "job.json").write_text(cfg.model_dump_json())
    assert parse("--config", str(tmp_path / "job.json")) == cfg
    assert parse("--config", str(tmp_path / "job.json"), "--limit", "3").limit == 3
    with pytest.raises(ValueError, match="--c-severities\\[0\\]"):
        parse("--config", str(tmp_path / "job.json"), "--c-severities", "9")


def test_suite_labels_take_the_names_experiments_use():
    """experiments/pacs.py labels its imagefolder suites by domain (art_painting=imagefolder:...)."""
    from schemas.jobs import EvalJobConfig

    cfg = EvalJobConfig(model="/m", out="/o", suites=["art_painting=imagefolder:/d/art", "imagenet-r"])
    assert cfg.suites[0] == "art_painting=imagefolder:/d/art"
