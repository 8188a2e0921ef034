"""No request value can become an option of a job: a leading-dash value sent through every field of every
run kind is refused (422) or reaches the job's own argparse parser as a value, never as a flag."""
from __future__ import annotations

import shlex

import pytest

from schemas.api import EvalRunConfig, GenerateRunConfig, TrainRunConfig

# Each would change what the job does if argparse read it as an option (the live exploit wrote
# files outside the store through --c-out); "-h" would make the parser exit.
INJECTIONS = ("--c-out=/tmp/pwned", "--out=/tmp/pwned", "-h")
BASE = {"generate": {"source": "/data/src"}, "train": {"source": "/data/src", "sample_set": "synthetic"},
        "eval": {"model": "/models/m", "suites": ["imagenet-r"], "data_root": "/data/eval"}}
CONFIGS = {"generate": GenerateRunConfig, "train": TrainRunConfig, "eval": EvalRunConfig}


def _parser(kind: str):
    if kind == "generate":
        from services.generator.cli import build_parser
    elif kind == "train":
        from services.trainer.cli import build_parser
    else:
        from services.evaluator.cli import build_parser
    return build_parser()


def _variants(kind: str, value: str):
    """(where, config) with `value` put in each field: as the value, a list item, a dict key, a dict value,
    and inside each suite form."""
    for name in CONFIGS[kind].model_fields:
        for shape, v in (("", value), ("[]", [value]), ("{key}", {value: 1}), ("{value}", {"teacher.pretrained": value})):
            yield f"{name}{shape}", {**BASE[kind], name: v}
    for form in (f"imagenet-r={value}", f"imagefolder:{value}", f"x=imagefolder:{value}", f"{value},imagenet-a"):
        yield f"suites[{form}]", {**BASE["eval"], "suites": [form]} if kind == "eval" else {}


def _parsed(kind: str, entrypoint: str) -> dict:
    """The job's config as the job builds it from its argv (which names the run record, `--config`)."""
    from schemas.jobs import JOB_CONFIGS
    from services.jobs.cli import job_config_from_args

    argv = shlex.split(entrypoint)
    module = {"generate": "generator", "train": "trainer", "eval": "evaluator"}[kind]
    flags = __import__(f"services.{module}.cli", fromlist=["FLAGS"]).FLAGS
    return job_config_from_args(JOB_CONFIGS[kind], _parser(kind).parse_args(argv[3:]), flags).model_dump()


@pytest.mark.parametrize("kind", ["generate", "train", "eval"])
def test_leading_dash_values_never_become_options(client, auth, launcher, kind):
    run = 0
    baseline_id = f"base-{kind}"
    r = client.post("/runs", json={"id": baseline_id, "kind": kind, "config": BASE[kind]}, headers=auth)
    assert r.status_code == 201, r.text
    baseline = _parsed(kind, launcher.jobs[baseline_id]["entrypoint"])
    outcomes = {"refused": 0, "accepted": 0}
    for value in INJECTIONS:
        for where, config in _variants(kind, value):
            if not config:
                continue
            run += 1
            run_id = f"inj-{kind}-{run}"
            r = client.post("/runs", json={"id": run_id, "kind": kind, "config": config}, headers=auth)
            if r.status_code == 422:
                outcomes["refused"] += 1
                continue
            assert r.status_code == 201, (where, value, r.text)
            outcomes["accepted"] += 1
            try:
                parsed = _parsed(kind, launcher.jobs[run_id]["entrypoint"])
            except SystemExit:
                pytest.fail(f"{kind} {where}={value!r}: the job's parser read the value as an option")
            for dest, got in parsed.items():
                if dest in ("out", "name") and got != baseline[dest]:
                    assert run_id in str(got), (where, value, dest, got)  # outputs follow the run id only
                elif got != baseline[dest]:
                    assert value in str(got), f"{kind} {where}={value!r} changed option {dest!r} to {got!r}"
            assert parsed["out"] == baseline["out"].replace(baseline_id, run_id)
    assert outcomes["refused"] > 0
    assert outcomes["accepted"] > 0 or kind == "eval"  # generate/train take free text in overrides: checked above


def test_evaluator_suites_refuse_anything_but_known_forms():
    ok = ["imagenet-r", "imagenet-c=s3://b/c", "imagefolder:/data/pacs/sketch", "sketch=imagefolder:/d/s"]
    EvalRunConfig(model="/m", suites=ok)
    for bad in ["--c-out=/tmp/x", "--build-c-from=/etc", "--ray-address=http://evil:8265", "--storage-option=a=b",
                "--set", "imagenet-r=--out=/x", "imagefolder:--x", "unknown-suite", "imagenet-r,--x",
                "imagenet-r=imagefolder:/x", "imagenet-r=/x\x7f"]:
        with pytest.raises(ValueError):
            EvalRunConfig(model="/m", suites=[bad])
