"""Job command lines, built from validated run configs only (pure: no I/O, no Ray).

A job is `python -m services.<service> --flag=value ...`: an argv list whose every element is a constant or
a typed config value glued to its flag (`--flag=value`, never `--flag value`), so no value can ever be read
as an option by the service's argparse parser, whatever it starts with. The list is joined with
`shlex.join` for Ray (which runs the entrypoint with a shell), so no value can become shell syntax.
Outputs always go below the store root, at a location fixed by the run id; callers never choose where a
job writes.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from schemas.api import EvalRunConfig, GenerateRunConfig, TrainRunConfig
from services.api.store import Store

# fsspec options that are credentials: they reach jobs through the environment (DAD_JOB_ENV), never argv,
# so they do not show up in Ray's job list, the dashboard or the store's run records.
_SECRET_OPTION_WORDS = ("key", "secret", "token", "password", "credential", "session")


@dataclass(frozen=True)
class JobSpec:
    argv: list[str]
    output_uri: str
    sample_set_id: str | None = None

    @property
    def entrypoint(self) -> str:
        return shlex.join(self.argv)


def override_args(overrides: Mapping[str, Any]) -> list[str]:
    """`--set key=value` pairs; values are JSON, which the services parse back as YAML to the same value."""
    out: list[str] = []
    for key, value in overrides.items():
        out.append(_flag("--set", f"{key}={json.dumps(value)}"))
    return out


def storage_option_args(options: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in options.items():
        if any(word in key.lower() for word in _SECRET_OPTION_WORDS) or not isinstance(value, (str, int, float, bool)):
            continue
        out.append(_flag("--storage-option", f"{key}={value}"))
    return out


def _flag(flag: str, value: Any) -> str:
    """`--flag=value`: one argv element, so argparse takes `value` as the flag's value even if it starts with '-'."""
    return f"{flag}={value}"


def _optional(flag: str, value: Any) -> list[str]:
    return [] if value is None else [_flag(flag, value)]


def generate_job(run_id: str, config: GenerateRunConfig, store: Store, python: str) -> JobSpec:
    set_id = config.set_name or run_id
    argv = [python, "-m", "services.generator", _flag("--source", config.source), _flag("--out", store.sample_sets_uri()),
            _flag("--name", set_id), _flag("--preset", config.preset), *override_args(config.overrides),
            *_optional("--class-map", config.class_map), _flag("--source-format", config.source_format),
            *_optional("--limit", config.limit), *_optional("--shard-size", config.shard_size),
            *_optional("--batch-size", config.batch_size), *_optional("--num-actors", config.num_actors),
            *_optional("--cpus-per-actor", config.cpus_per_actor),
            *_optional("--gpus-per-actor", config.gpus_per_actor),
            *storage_option_args(store.storage_options), "--no-progress"]
    return JobSpec(argv, store.set_uri(set_id), set_id)


def train_job(run_id: str, config: TrainRunConfig, store: Store, python: str) -> JobSpec:
    out = store.run_uri(run_id)
    samples = store.manifest_uri(config.sample_set) if config.sample_set else None
    argv = [python, "-m", "services.trainer", _flag("--source", config.source), _flag("--out", out),
            *_optional("--samples", samples), *_optional("--student", config.student),
            _flag("--objective", config.objective), _flag("--teacher-logits", config.teacher_logits),
            _flag("--preset", config.preset), *override_args(config.overrides),
            *_optional("--class-map", config.class_map), *_optional("--val", config.val),
            *_optional("--val-fraction", config.val_fraction), _flag("--epochs", config.epochs),
            _flag("--batch-size", config.batch_size), _flag("--optimizer", config.optimizer),
            *_optional("--lr", config.lr), *_optional("--weight-decay", config.weight_decay),
            _flag("--warmup-epochs", config.warmup_epochs), *(["--bf16"] if config.bf16 else []),
            _flag("--seed", config.seed), _flag("--workers", config.workers),
            _flag("--cpus-per-worker", config.cpus_per_worker), _flag("--gpus-per-worker", config.gpus_per_worker),
            _flag("--loader-workers", config.loader_workers),
            *_optional("--max-steps-per-epoch", config.max_steps_per_epoch), _flag("--log-every", config.log_every),
            *storage_option_args(store.storage_options), "--no-progress"]
    return JobSpec(argv, out)


def eval_job(run_id: str, config: EvalRunConfig, store: Store, python: str) -> JobSpec:
    """Suites go as one `--suites=a,b` element (the evaluator splits on commas; suite items cannot hold one)."""
    out = store.run_uri(run_id)
    model = store.run_uri(config.model_run) if config.model_run else config.model
    argv = [python, "-m", "services.evaluator", _flag("--model", model), _flag("--name", config.model_run or run_id),
            _flag("--suites", ",".join(config.suites)), *_optional("--data-root", config.data_root),
            _flag("--out", out), *_optional("--class-map", config.class_map), *_optional("--limit", config.limit),
            *_optional("--batch-size", config.batch_size), *storage_option_args(store.storage_options)]
    return JobSpec(argv, out)


BUILDERS: dict[str, Callable[..., JobSpec]] = {"generate": generate_job, "train": train_job, "eval": eval_job}


def build_job(kind: str, run_id: str, config, store: Store, python: str) -> JobSpec:
    return BUILDERS[kind](run_id, config, store, python)
