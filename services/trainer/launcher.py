"""Run a training job on Ray Train: preflight on the driver, then `TorchTrainer` with one DDP rank per worker.

Like the generator, the job joins `--ray-address` or RAY_ADDRESS (set by `ray job submit`), and otherwise
starts a local Ray that lives as long as the process. Ray Train V2 (the default in Ray 2.60) is
assumed: results are read from our own metrics file, not from `Result.metrics`.
"""
from __future__ import annotations

import json
import logging
import posixpath
import sys
from typing import Any

import torch

from dad_core import Preset
from services.jobs.ray_cluster import connect_ray  # one way to join or start Ray for every job
from services.storage import absolute_uri
from services.tracking import EXPERIMENT_PREFIX, RUN_FILE, Tracker, find_run, read_run_file, tracking_uri
from services.trainer.checkpointing import CONFIG_NAME, MODEL_INFO_NAME, RunStore
from services.trainer.metrics import METRICS_NAME
from services.trainer.model_folder import CONFIG_NAME as FOLDER_CONFIG, MODEL_FOLDER, WEIGHTS_NAME
from services.trainer.config import TrainConfig
from services.trainer.loop import WorkerContext, train_worker
from services.trainer.metrics import percent, read_metrics
from services.trainer.preflight import Plan, TrainInputError, preflight
from services.trainer.student_init import is_file, resolved_init

log = logging.getLogger(__name__)


class TrainingFailed(RuntimeError):
    """A worker failed after training started; the message carries the worker's error."""


def ray_train_loop(config: dict[str, Any]) -> None:
    """What each Ray Train worker runs (torch.distributed is already initialised by TorchTrainer).

    `config` holds the run's config as a dict and the job's resolved `Preset` object (never rebuilt here)."""
    import ray.train
    import ray.train.torch

    cfg, preset = TrainConfig.from_dict(config["config"]), config["preset"]
    torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))  # fractional CPUs must not spawn N threads each
    context = ray.train.get_context()
    ctx = WorkerContext(rank=context.get_world_rank(), world_size=context.get_world_size(),
                        device=ray.train.torch.get_device(), in_ray_worker=True)
    train_worker(cfg, ctx, preset=preset, tracking=config.get("mlflow"))


def start_tracking(cfg: TrainConfig, preset: Preset, plan: Plan, store: RunStore) -> Tracker:
    """The run's MLflow run (a no-op without MLFLOW_TRACKING_URI): in the sample set's experiment, nested under
    its generate run; a re-run continues the MLflow run its folder's mlflow.json names."""
    if tracking_uri() is None:
        return Tracker(None)
    set_path = (cfg.samples or "").rstrip("/")
    set_name = posixpath.basename(posixpath.dirname(set_path) if set_path.endswith(".json") else set_path) or None
    experiment = EXPERIMENT_PREFIX + (set_name or posixpath.basename(cfg.source.rstrip("/")))
    parent = find_run(experiment, {"dad.kind": "generate", "dad.sample_set": set_name}) if set_name else None
    name = posixpath.basename(cfg.out.rstrip("/"))
    tracker = Tracker.start(experiment, f"train {name}", {"dad.kind": "train", "dad.out": cfg.out,
                                                          "dad.objective": cfg.objective, "dad.student": cfg.student},
                            parent_run_id=parent, resume=read_run_file(store.read))
    if tracker.active:
        store.write(RUN_FILE, json.dumps(tracker.record(), indent=2).encode())
        params = {k: v for k, v in cfg.to_dict().items() if k not in ("storage_options", "ray_address")}
        tracker.log_params({**params, "student_init_record": plan.student_init or {},
                            "preset_config": {k: v for k, v in preset.to_dict().items() if k != "description"}})
    return tracker


def track_outputs(tracker: Tracker, store: RunStore) -> None:
    """The model folder, model.json, metrics.jsonl and train_config.json as the MLflow run's artifacts."""
    if not tracker.active:
        return
    names = [f"{MODEL_FOLDER}/{WEIGHTS_NAME}", f"{MODEL_FOLDER}/{FOLDER_CONFIG}", MODEL_INFO_NAME, METRICS_NAME,
             CONFIG_NAME]
    tracker.log_files({n: data for n in names if (data := store.read(n)) is not None})


def _check_resources(cfg: TrainConfig) -> None:
    import ray

    have = ray.cluster_resources()
    cpus, gpus = cfg.workers * cfg.cpus_per_worker, cfg.workers * cfg.gpus_per_worker
    if gpus > have.get("GPU", 0):
        raise TrainInputError(f"{cfg.workers} workers x {cfg.gpus_per_worker} GPUs need {gpus:g} GPUs; the Ray "
                              f"cluster has {have.get('GPU', 0):g} (use --gpus-per-worker 0 to train on CPUs)")
    if cpus > have.get("CPU", 0):
        raise TrainInputError(f"{cfg.workers} workers x {cfg.cpus_per_worker} CPUs need {cpus:g} CPUs; the Ray "
                              f"cluster has {have.get('CPU', 0):g} (lower --cpus-per-worker, e.g. 0.5)")


def resolve(cfg: TrainConfig) -> tuple[TrainConfig, Preset]:
    """The job's preset, resolved once, and the config completed from it: the preset's student and student_init
    when none is given, relative paths made absolute (the workers run in Ray's own working directory)."""
    try:
        preset = cfg.resolve_preset()
    except (ValueError, TypeError) as e:
        raise TrainInputError(f"preset {cfg.preset!r}: {e}") from None
    cfg = cfg.model_copy(update={"student": cfg.student or preset.student,
                                 "student_init": resolved_init(cfg.student_init, preset.student_init)})
    return absolute_paths(cfg), preset


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """Relative paths made absolute, against this process's directory (Ray Train workers run in another)."""
    names = ("source", "out", "samples", "class_map", "val") + (("student_init",) if cfg.student_init and
                                                                 is_file(cfg.student_init) else ())
    return cfg.model_copy(update={name: absolute_uri(getattr(cfg, name)) for name in names})


def run(cfg: TrainConfig, echo=print) -> list[dict[str, Any]]:
    """Check inputs, then train on Ray; returns the run's metrics records (de-duplicated)."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg, preset = resolve(cfg)
    plan: Plan = preflight(cfg, preset, echo)
    echo(plan.describe(cfg))
    store = RunStore(cfg.out, cfg.storage_options)
    if plan.resume_epoch >= cfg.epochs and store.has_model():
        echo(f"{store.uri} already finished {plan.resume_epoch} epochs: nothing to train (raise --epochs to continue)")
        return read_metrics(cfg.out, cfg.storage_options)
    if not ray.is_initialized():
        connect_ray(cfg.ray_address)
    _check_resources(cfg)
    store.write_config(cfg.to_dict())
    tracker = start_tracking(cfg, preset, plan, store)
    resources = {"CPU": cfg.cpus_per_worker, **({"GPU": cfg.gpus_per_worker} if cfg.gpus_per_worker else {})}
    trainer = TorchTrainer(
        ray_train_loop,
        train_loop_config={"config": cfg.to_dict(), "preset": preset,
                           "mlflow": tracker.record() if tracker.active else None},
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.gpus_per_worker > 0,
                                     resources_per_worker=resources),
        run_config=RunConfig(name=f"dad-train-{cfg.student}-{cfg.objective}".replace("+", "_"),
                             failure_config=FailureConfig(max_failures=cfg.max_failures)),
    )
    try:
        trainer.fit()
    except ray.train.TrainingFailedError as e:
        tracker.end(ok=False)
        raise TrainingFailed(f"training failed (the last checkpoint in {cfg.out} is kept; re-run to resume):"
                             f"\n{e}") from None
    track_outputs(tracker, store)
    tracker.end(ok=True)
    return read_metrics(cfg.out, cfg.storage_options)


def final_summary(records: list[dict[str, Any]]) -> str:
    epochs = [r for r in records if r.get("type") == "epoch"]
    if not epochs:
        return "no epoch finished"
    last = epochs[-1]
    acc = percent(last["val_top1"]) if last.get("val_top1") is not None else "n/a (no validation data)"
    return f"epoch {last['epoch'] + 1}: train loss {last['train_loss']:.4f}, val top-1 {acc}"


def main_run(cfg: TrainConfig) -> int:
    """CLI body: exit code 2 and one line naming the problem for bad input, 1 for a failed run."""
    try:
        records = run(cfg)
    except TrainInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(final_summary(records))
    print(f"model: {RunStore(absolute_uri(cfg.out), cfg.storage_options).uri}/model.pth")
    return 0
