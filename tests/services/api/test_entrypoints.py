"""Jobs built from run configs: the job reads its config from the run record (`--config run.json`), with
typed values (no text re-parsed), locations fixed by the run id, and no credentials on argv or in the record."""
from __future__ import annotations

import shlex

import pytest

from schemas.api import EvalRunConfig, GenerateRunConfig, RunRecord, TrainRunConfig
from services.api.entrypoints import build_job
from services.api.store import Store


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "store"), {"endpoint_url": "http://127.0.0.1:9000", "secret": "s3cr3t", "key": "k"})


def _write_record(store: Store, run_id: str, kind: str, config, job) -> None:
    from datetime import datetime, timezone

    store.write_run_record(RunRecord(id=run_id, kind=kind, config=config.model_dump(mode="json"), config_sha256="x",
                                     entrypoint=job.argv, output_uri=job.output_uri, sample_set_id=job.sample_set_id,
                                     submitted_at=datetime.now(timezone.utc), job=job.job.model_dump(mode="json")))


def test_generate_job_reads_its_typed_config_from_the_run_record(store):
    from services.generator.cli import build_parser, config_from_args

    cfg = GenerateRunConfig(source="/data/x; rm -rf / #", preset="tiny",
                            overrides={"attack.step_size": 1e-05, "teacher.pretrained": "a b --out /etc",
                                       "attack.epsilon": None, "attack.random_start": 0.0}, limit=5, shard_size=8,
                            cpus_per_actor=0.5)
    job = build_job("generate", "run-1", cfg, store, "python")
    assert shlex.split(job.entrypoint) == job.argv  # the shell sees exactly these arguments
    assert job.argv[3] == f"--config={store.run_record_uri('run-1')}"
    _write_record(store, "run-1", "generate", cfg, job)
    parsed = config_from_args(build_parser().parse_args(job.argv[3:]))
    assert parsed.source == "/data/x; rm -rf / #"
    assert parsed.out == store.sample_sets_uri() and parsed.name == "run-1"
    # 1e-05 arrives as the float it was sent as (YAML used to read the text back as the string '1e-05').
    assert parsed.overrides == {"attack.step_size": 1e-05, "teacher.pretrained": "a b --out /etc",
                                "attack.epsilon": None, "attack.random_start": 0.0}
    assert (parsed.limit, parsed.shard_size, parsed.cpus_per_actor, parsed.progress_bar) == (5, 8, 0.5, False)
    assert parsed.storage_options == {"endpoint_url": "http://127.0.0.1:9000"}  # credentials: environment only
    assert "s3cr3t" not in job.entrypoint and "s3cr3t" not in store.read_bytes(
        store.run_record_uri("run-1").removeprefix("file://")).decode()
    assert job.output_uri == store.set_uri("run-1")


def test_train_job_reads_its_config_and_gets_the_presets_student(store):
    from services.trainer.cli import build_parser, config_from_args
    from services.trainer.launcher import resolve

    cfg = TrainRunConfig(source="/data/train", sample_set="set-1", preset="tiny", objective="dad", epochs=2,
                         batch_size=4, bf16=True, cpus_per_worker=0.5, max_steps_per_epoch=3,
                         overrides={"distill.temperature": 2.0})
    job = build_job("train", "train-1", cfg, store, "python")
    _write_record(store, "train-1", "train", cfg, job)
    parsed = config_from_args(build_parser().parse_args(job.argv[3:]))
    assert parsed.out == store.run_uri("train-1") == job.output_uri
    assert parsed.samples == store.manifest_uri("set-1")
    assert (parsed.epochs, parsed.batch_size, parsed.precision, parsed.cpus_per_worker) == (2, 4, "bf16", 0.5)
    assert parsed.overrides == {"distill.temperature": 2.0}
    resolved, preset = resolve(parsed)
    assert resolved.student == preset.student == "test_resnet"  # the preset's student when none is given
    assert preset.distill.temperature == 2.0


def test_flags_next_to_config_override_its_fields(store):
    from services.trainer.cli import build_parser, config_from_args

    cfg = TrainRunConfig(source="/data/train", sample_set="set-1", preset="tiny", epochs=2)
    job = build_job("train", "train-2", cfg, store, "python")
    _write_record(store, "train-2", "train", cfg, job)
    parsed = config_from_args(build_parser().parse_args([*job.argv[3:], "--epochs", "5", "--set", "attack.steps=3"]))
    assert parsed.epochs == 5 and parsed.overrides == {"attack.steps": 3} and parsed.preset == "tiny"


def test_eval_job_reads_its_config(store):
    from services.evaluator.cli import FLAGS, build_parser
    from services.jobs.cli import job_config_from_args
    from schemas.jobs import EvalJobConfig

    cfg = EvalRunConfig(model_run="train-1", suites=["imagenet-r", "imagefolder:/data/pacs/sketch"],
                        data_root="s3://bucket/eval", limit=10)
    job = build_job("eval", "eval-1", cfg, store, "python")
    _write_record(store, "eval-1", "eval", cfg, job)
    args = job_config_from_args(EvalJobConfig, build_parser().parse_args(job.argv[3:]), FLAGS)
    assert args.model == store.run_uri("train-1") and args.name == "train-1"
    assert args.suites == ["imagenet-r", "imagefolder:/data/pacs/sketch"] and args.limit == 10
    assert args.out == store.run_uri("eval-1")


def test_no_config_field_reaches_the_runtime_env_or_the_interpreter(store):
    """The interpreter, module and runtime env are the operator's; configs only fill the job's config."""
    for kind, cfg in (("generate", GenerateRunConfig(source="/d")),
                      ("train", TrainRunConfig(source="/d", sample_set="s")),
                      ("eval", EvalRunConfig(model="/m", suites=["imagenet-r"]))):
        job = build_job(kind, "r", cfg, store, "/opt/venv/bin/python")
        module = {'generate': 'generator', 'train': 'trainer', 'eval': 'evaluator'}[kind]
        assert job.argv == ["/opt/venv/bin/python", "-m", f"services.{module}", f"--config={store.run_record_uri('r')}",
                            "--storage-option=endpoint_url=http://127.0.0.1:9000"]  # --flag=value: one element each
    for field in ("runtime_env", "entrypoint", "python", "env", "pip"):
        with pytest.raises(ValueError):
            GenerateRunConfig(source="/d", **{field: "x"})


def test_schema_suite_names_are_the_evaluators():
    from schemas.api import EVAL_SUITE_NAMES
    from services.evaluator.suites import SUITES

    assert sorted(EVAL_SUITE_NAMES) == sorted(SUITES)
