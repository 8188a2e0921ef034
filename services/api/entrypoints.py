"""Jobs, built from validated run configs only (pure: no I/O, no Ray).

A run config (schemas.api) is its job's settings plus catalog ids; here the ids become locations below the
store root, fixed by the run id (callers never choose where a job writes), giving the job's own config
(schemas.jobs). The control plane writes that config into the run record (`runs/<id>/run.json`, `job`),
and the job reads it back: `python -m services.<job> --config <run.json> [--storage-option k=v ...]`.
Values never travel as command-line text, so none can become shell syntax or be re-read as another type;
the few argv elements are `--flag=value` (one element each: argparse never takes a value for an option),
joined with `shlex.join` for Ray, which runs the entrypoint with a shell.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import services.jobs  # noqa: F401 - installs the dad_core checks the run configs validate with
from pydantic import BaseModel
from schemas.api import JOB_KINDS, EvalRunConfig, GenerateRunConfig, TrainRunConfig
from schemas.jobs import EvalJobConfig, EvalSettings, GenerateJobConfig, GenerateSettings, TrainJobConfig, TrainSettings
from services.api.store import Store

# fsspec options that are credentials: they reach jobs through the environment (DAD_JOB_ENV), never argv or
# the run record, so they do not show up in Ray's job list, the dashboard or the store.
_SECRET_OPTION_WORDS = ("key", "secret", "token", "password", "credential", "session")


@dataclass(frozen=True)
class JobSpec:
    argv: list[str]
    output_uri: str
    job: BaseModel                 # the job's config (schemas.jobs), written into the run record
    sample_set_id: str | None = None

    @property
    def entrypoint(self) -> str:
        return shlex.join(self.argv)


def public_storage_options(options: Mapping[str, Any]) -> dict[str, str]:
    """The store's fsspec options minus credentials, as the strings every job takes."""
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()
            if not any(word in k.lower() for word in _SECRET_OPTION_WORDS) and isinstance(v, (str, int, float, bool))}


def storage_option_args(options: Mapping[str, Any]) -> list[str]:
    """`--storage-option k=v` for the non-secret options: the job needs them to read its run record."""
    out: list[str] = []
    for key, value in public_storage_options(options).items():
        out.append(_flag("--storage-option", f"{key}={value}"))
    return out


def _flag(flag: str, value: Any) -> str:
    """`--flag=value`: one argv element, so argparse takes `value` as the flag's value even if it starts with '-'."""
    return f"{flag}={value}"


def _settings(config: BaseModel, settings: type[BaseModel]) -> dict[str, Any]:
    return {name: getattr(config, name) for name in settings.model_fields}


def _argv(kind: str, run_id: str, store: Store, python: str) -> list[str]:
    return [python, "-m", JOB_KINDS[kind].module, _flag("--config", store.run_record_uri(run_id)),
            *storage_option_args(store.storage_options)]


_BUILDERS: dict[str, Callable[..., JobSpec]] = {}


def _builds(kind: str):
    """Register the builder of one kind of JOB_KINDS (the table stays the one list of kinds)."""
    def register(fn: Callable[..., JobSpec]) -> Callable[..., JobSpec]:
        if kind not in JOB_KINDS:
            raise KeyError(f"{kind!r} is not in schemas.api.JOB_KINDS")
        _BUILDERS[kind] = fn
        return fn
    return register


@_builds("generate")
def generate_job(run_id: str, config: GenerateRunConfig, store: Store, python: str) -> JobSpec:
    set_id = config.set_name or run_id
    job = GenerateJobConfig(**_settings(config, GenerateSettings), out=store.sample_sets_uri(), name=set_id,
                            storage_options=public_storage_options(store.storage_options), progress_bar=False)
    return JobSpec(_argv("generate", run_id, store, python), store.set_uri(set_id), job, set_id)


@_builds("train")
def train_job(run_id: str, config: TrainRunConfig, store: Store, python: str) -> JobSpec:
    out = store.run_uri(run_id)
    samples = store.manifest_uri(config.sample_set) if config.sample_set else None
    job = TrainJobConfig(**_settings(config, TrainSettings), out=out, samples=samples,
                         storage_options=public_storage_options(store.storage_options), progress_bar=False)
    return JobSpec(_argv("train", run_id, store, python), out, job)


@_builds("eval")
def eval_job(run_id: str, config: EvalRunConfig, store: Store, python: str) -> JobSpec:
    out = store.run_uri(run_id)
    model = store.run_uri(config.model_run) if config.model_run else config.model
    job = EvalJobConfig(**_settings(config, EvalSettings), model=str(model), name=config.model_run or run_id,
                        out=out, storage_options=public_storage_options(store.storage_options))
    return JobSpec(_argv("eval", run_id, store, python), out, job)


if set(_BUILDERS) != set(JOB_KINDS):
    raise RuntimeError(f"job kinds without a builder: {sorted(set(JOB_KINDS) - set(_BUILDERS))}")


def build_job(kind: str, run_id: str, config, store: Store, python: str) -> JobSpec:
    """The job's command line and config for a validated run config of `kind` (a key of JOB_KINDS)."""
    return _BUILDERS[kind](run_id, config, store, python)
