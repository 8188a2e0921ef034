"""The per-worker training loop: build, resume, then for each epoch train, validate, checkpoint, log.

Runs the same way in a Ray Train worker (DDP already initialised) and in a plain process (tests,
debugging): everything distributed goes through `WorkerContext`.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from dad_core import PixelSpaceClassifier, Preset, create_discretizer, create_student, create_teacher
from services.tracking import Tracker, metrics_sink
from services.trainer.checkpointing import RunStore, capture_rng, restore_rng
from services.trainer.config import TrainConfig
from services.trainer.data import TrainingData, build_datasets, train_loader, val_loader
from services.trainer.metrics import MetricsLog, percent, progress_bar
from services.trainer.optim import create_optimizer, create_scheduler
from services.trainer.student_init import build_student, resolved_init
from services.trainer.step import StepModels, StepSettings, autocast, compute_losses, to_pixels


@dataclass(frozen=True)
class WorkerContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    in_ray_worker: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.distributed:
            return model
        ids = [self.device] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average scalars over ranks (every rank must call this at the same point)."""
        if not self.distributed or not values:
            return values
        t = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world_size).tolist()))

    def sum(self, values: list[float]) -> list[float]:
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_worker(cfg: TrainConfig, ctx: WorkerContext = WorkerContext(), data: TrainingData | None = None,
                 preset: Preset | None = None, tracking: dict | None = None) -> dict:
    """Train (or resume) the run described by `cfg` with the job's resolved `preset`; returns the last epoch's
    summary. `tracking` ({tracking_uri, run_id}: the driver's MLflow run) gets rank 0's metrics records too."""
    seed_everything(cfg.seed * 1000 + ctx.rank)
    preset = preset or cfg.resolve_preset()
    data = data or build_datasets(cfg, preset.image_size)
    store = RunStore(cfg.out, cfg.storage_options)
    init = resolved_init(cfg.student_init, preset.student_init)
    if store.latest() is None:  # a new run starts from student_init; a resumed one from its checkpoint
        model, init_record = build_student(cfg.student, len(data.class_names), init, cfg.storage_options)
    else:
        model, init_record = create_student(cfg.student, num_classes=len(data.class_names)), None
    model = model.to(ctx.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    pixel_student = PixelSpaceClassifier(model).to(ctx.device)
    # Stored logits: no teacher is ever built. DAT: Q is needed for the student's own attack.
    teacher = create_teacher(preset.teacher, data.class_names, ctx.device) if cfg.needs_teacher_model else None
    discretizer = create_discretizer(preset.discretizer, ctx.device) if cfg.needs_dat else None

    loader = train_loader(cfg, data.train, ctx.rank, ctx.world_size)
    steps_per_epoch = min(len(loader), cfg.max_steps_per_epoch or len(loader))
    optimizer = create_optimizer(model, cfg)
    scheduler = create_scheduler(optimizer, cfg, steps_per_epoch)
    sink = None
    if tracking and ctx.rank == 0:
        sink = metrics_sink(Tracker(tracking["tracking_uri"], tracking["run_id"], tracking.get("experiment_id")))
    log = MetricsLog(cfg.out, cfg.storage_options, enabled=ctx.rank == 0, on_record=sink)
    start_epoch, step, resumed, saved_init = resume(store, model, optimizer, scheduler, ctx)
    init_record = init_record or saved_init
    if resumed:
        log.rewind(step)  # the killed epoch's steps are logged again below: no duplicate step records
    log.log({"type": "event", "event": "resume" if resumed else "start", "epoch": start_epoch, "step": step,
             "world_size": ctx.world_size, "steps_per_epoch": steps_per_epoch, "train_examples": len(data.train),
             "unpaired_examples": data.num_unpaired, "student_init": init_record}, flush=True)

    models = StepModels(ctx.wrap(model), pixel_student, teacher, discretizer)
    settings = StepSettings(cfg.objective, preset.distill, preset.dat, cfg.mixup, cfg.precision, cfg.channels_last)
    summary: dict = {"epoch": start_epoch, "step": step}
    for epoch in range(start_epoch, cfg.epochs):
        loader.sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        step, train_loss = train_one_epoch(models, loader, optimizer, scheduler, settings, cfg, ctx, log,
                                           epoch, step, steps_per_epoch)
        top1, top5 = evaluate(model, pixel_student, data, cfg, ctx)
        summary = {"type": "epoch", "epoch": epoch, "step": step, "train_loss": train_loss, "val_top1": top1,
                   "val_top5": top5, "epoch_time_s": round(time.perf_counter() - t0, 3)}
        rngs = ctx.gather(capture_rng())  # every rank's, so each resumes its own stream
        if ctx.rank == 0:
            log.log(summary, flush=True)
            # A line per epoch, in a terminal and in job logs; not print(): Ray Train patches it to log twice.
            sys.stdout.write(epoch_line(summary, cfg.epochs) + "\n")
            sys.stdout.flush()
            store.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "rng": rngs, "student_init": init_record or {}},
                       epoch + 1, step)
        if ctx.distributed:
            dist.barrier()  # no rank may start the next epoch before the checkpoint exists
    if ctx.rank == 0:
        store.export(model, {"student": cfg.student, "num_classes": len(data.class_names),
                             "class_names": data.class_names, "image_size": data.image_size,
                             "mean": pixel_student.mean.flatten().tolist(), "std": pixel_student.std.flatten().tolist(),
                             "objective": cfg.objective, "epochs": cfg.epochs, "student_init": init_record})
        log.log({"type": "event", "event": "end", "epoch": cfg.epochs, "step": step}, flush=True)
    return summary


def resume(store: RunStore, model: nn.Module, optimizer, scheduler,
           ctx: WorkerContext) -> tuple[int, int, bool, dict | None]:
    """Load the last checkpoint if there is one: (epochs done, global step, resumed?, the student_init record
    the run started from; None in checkpoints written before it was kept).

    RNG streams are restored when the world size is unchanged; otherwise each rank keeps its fresh seed.
    """
    latest = store.latest()
    if latest is None:
        return 0, 0, False, None
    state = store.load(latest)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if len(state["rng"]) == ctx.world_size:
        restore_rng(state["rng"][ctx.rank])
    return state["epoch"], state["global_step"], True, state.get("student_init") or None


def epoch_line(summary: dict, epochs: int) -> str:
    """`epoch 2/3: train loss 1.2345, val top-1 45.8%, 12.3 s` for the console and the job log."""
    val = f", val top-1 {percent(summary['val_top1'])}" if summary.get("val_top1") is not None else ""
    return f"epoch {summary['epoch'] + 1}/{epochs}: train loss {summary['train_loss']:.4f}{val}, {summary['epoch_time_s']:.1f} s"


def train_one_epoch(models: StepModels, loader, optimizer, scheduler, settings: StepSettings, cfg: TrainConfig,
                    ctx: WorkerContext, log: MetricsLog, epoch: int, step: int, steps: int) -> tuple[int, float]:
    """One pass over this rank's shard; logs mean loss terms, lr and images/s every `log_every` steps."""
    models.student.train()
    bar = progress_bar(steps, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress_bar and ctx.rank == 0, ctx.in_ray_worker)
    window: dict[str, torch.Tensor] = {}  # summed as tensors: no host sync per step on a GPU
    n, images, t_window, epoch_loss = 0, 0, time.perf_counter(), 0.0
    for i, batch in enumerate(loader):
        if i >= steps:
            break
        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
        losses = compute_losses(models, batch, settings, ctx.device)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        scheduler.step()
        step, n = step + 1, n + 1
        images += len(batch) + (int(batch.has_adv.sum()) if batch.has_adv is not None else 0)
        for k, v in losses.items():
            window[k] = window.get(k, 0.0) + v.detach().float()
        bar.update(1)
        if n == cfg.log_every or i + 1 == steps:
            record = ctx.mean({k: float(v) / n for k, v in window.items()})
            record["images_per_s"] = ctx.sum([images / max(time.perf_counter() - t_window, 1e-9)])[0]
            log.log({"type": "step", "epoch": epoch, "step": step, "lr": lr, **record})
            bar.set_postfix(loss=f"{record['loss']:.3f}", img_s=f"{record['images_per_s']:.0f}")
            epoch_loss += record["loss"] * n
            window, n, images, t_window = {}, 0, 0, time.perf_counter()
    bar.close()
    return step, epoch_loss / max(1, steps)


@torch.no_grad()
def evaluate(model: nn.Module, pixel_student: PixelSpaceClassifier, data: TrainingData, cfg: TrainConfig,
             ctx: WorkerContext) -> tuple[float | None, float | None]:
    """Top-1 / top-5 accuracy of the (bare) student on the validation data, exact over all ranks."""
    if data.val is None:
        return None, None
    model.eval()
    correct1 = correct5 = total = 0
    k = min(5, len(data.class_names))
    for batch in val_loader(cfg, data.val, ctx.rank, ctx.world_size):
        x = to_pixels(batch.images, ctx.device, cfg.channels_last)
        y = batch.labels.to(ctx.device)
        with autocast(ctx.device, cfg.precision):
            logits = model((x - pixel_student.mean) / pixel_student.std).float()
        top = logits.topk(k, dim=-1).indices
        correct1 += int((top[:, 0] == y).sum())
        correct5 += int((top == y[:, None]).any(-1).sum())
        total += len(y)
    model.train()
    c1, c5, n = ctx.sum([correct1, correct5, total])
    return (c1 / n, c5 / n) if n else (None, None)
