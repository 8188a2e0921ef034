"""Job command lines: argv lists of validated values that each service's own CLI parser accepts, and that no
config value can turn into shell syntax or an extra flag."""
from __future__ import annotations

import shlex

import pytest

from schemas.api import EvalRunConfig, GenerateRunConfig, TrainRunConfig
from services.api.entrypoints import build_job
from services.api.store import Store


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "store"), {"endpoint_url": "http://127.0.0.1:9000", "secret": "s3cr3t", "key": "k"})


def test_generate_argv_is_accepted_by_the_generator_cli(store):
    from services.generator.cli import build_parser, config_from_args

    cfg = GenerateRunConfig(source="/data/x; rm -rf / #", preset="tiny",
                            overrides={"attack.steps": 2, "teacher.pretrained": "a b --out /etc", "attack.epsilon": None},
                            limit=5, shard_size=8, cpus_per_actor=0.5)
    job = build_job("generate", "run-1", cfg, store, "python")
    assert shlex.split(job.entrypoint) == job.argv  # the shell sees exactly these arguments
    parsed = config_from_args(build_parser().parse_args(job.argv[3:]))
    assert parsed.source == "/data/x; rm -rf / #"
    assert parsed.out == store.sample_sets_uri() and parsed.name == "run-1"
    assert set(parsed.overrides) == {'attack.steps=2', 'teacher.pretrained="a b --out /etc"', "attack.epsilon=null"}
    from dad_core import parse_overrides

    assert parse_overrides(parsed.overrides) == {"attack.steps": 2, "teacher.pretrained": "a b --out /etc",
                                                 "attack.epsilon": None}
    assert parsed.storage_options == {"endpoint_url": "http://127.0.0.1:9000"}  # credentials never on argv
    assert "s3cr3t" not in job.entrypoint
    assert job.output_uri == store.set_uri("run-1")


def test_train_argv_is_accepted_by_the_trainer_cli(store):
    from services.trainer.cli import build_parser, config_from_args

    cfg = TrainRunConfig(source="/data/train", sample_set="set-1", preset="tiny", objective="dad", epochs=2,
                         batch_size=4, bf16=True, cpus_per_worker=0.5, max_steps_per_epoch=3,
                         overrides={"distill.temperature": 2.0})
    job = build_job("train", "train-1", cfg, store, "python")
    parsed = config_from_args(build_parser().parse_args(job.argv[3:]))
    assert parsed.out == store.run_uri("train-1") == job.output_uri
    assert parsed.samples == store.manifest_uri("set-1")
    assert (parsed.epochs, parsed.batch_size, parsed.precision, parsed.cpus_per_worker) == (2, 4, "bf16", 0.5)
    assert parsed.student == "test_resnet"  # the preset's student when none is given
    assert parsed.overrides == ("distill.temperature=2.0",)


def test_eval_argv_is_accepted_by_the_evaluator_cli(store):
    from services.evaluator.cli import build_parser

    cfg = EvalRunConfig(model_run="train-1", suites=["imagenet-r", "imagefolder:/data/pacs/sketch"],
                        data_root="s3://bucket/eval", limit=10)
    job = build_job("eval", "eval-1", cfg, store, "python")
    args = build_parser().parse_args(job.argv[3:])
    assert args.model == store.run_uri("train-1") and args.name == "train-1"
    from services.evaluator.suites import parse_suites

    requests = parse_suites(args.suites, args.data_root)
    assert [r.label for r in requests] == ["imagenet-r", "sketch"] and args.limit == 10
    assert requests[1].uri == "/data/pacs/sketch" and requests[0].uri == "s3://bucket/eval/imagenet-r"
    assert args.out == store.run_uri("eval-1")


def test_no_config_field_reaches_the_runtime_env_or_the_interpreter(store):
    """The interpreter, module and runtime env are the operator's; configs only fill flag values."""
    for kind, cfg in (("generate", GenerateRunConfig(source="/d")),
                      ("train", TrainRunConfig(source="/d", sample_set="s")),
                      ("eval", EvalRunConfig(model="/m", suites=["imagenet-r"]))):
        job = build_job(kind, "r", cfg, store, "/opt/venv/bin/python")
        assert job.argv[:3] == ["/opt/venv/bin/python", "-m", f"services.{ {'generate': 'generator', 'train': 'trainer', 'eval': 'evaluator'}[kind]}"]
        assert all(a.startswith("--") for a in job.argv[3:])  # every value is glued to its flag: --flag=value
    for field in ("runtime_env", "entrypoint", "python", "env", "pip"):
        with pytest.raises(ValueError):
            GenerateRunConfig(source="/d", **{field: "x"})


def test_schema_suite_names_are_the_evaluators():
    from schemas.api import EVAL_SUITE_NAMES
    from services.evaluator.suites import SUITES

    assert sorted(EVAL_SUITE_NAMES) == sorted(SUITES)
