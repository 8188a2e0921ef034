"""Batched inference over folders of images: in this process, or data-parallel over Ray actors (one per GPU).

The unit of work is a `FolderTask` (a slice of one folder's listing plus its class protocol); a worker
returns per-class (correct, total) counts and the images it skipped, and counts from any number of
workers simply add up. Images are read with services.source (robust decoding: a corrupt file is counted
with its reason, never fatal), resized to the model's resolution / crop_pct and centre-cropped, the usual
evaluation transform. On CUDA the forward pass runs under bf16 autocast; predictions use fp32 logits.
"""
from __future__ import annotations

import math
import os
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from dad_core.metrics import class_counts, top1_predictions
from services.evaluator.models import LoadedModel, ModelSpec, load_model
from services.evaluator.suites import ClassProtocol
from services.source import DecodedImage, ReadSpec, SourceItem, read_items

MAX_SKIPPED_EXAMPLES = 20  # per folder, in the result JSON; the counts are always complete


@dataclass(frozen=True)
class HarnessConfig:
    batch_size: int = 128
    device: str = "auto"          # "auto": cuda when available
    bf16: bool = True             # autocast on CUDA (ignored on CPU, where bf16 is slow and changes numbers)
    workers: int | None = None    # Ray actors; None: one per GPU when Ray sees GPUs, else this process
    actor_cpus: float = 1.0       # CPUs per CPU-only actor (tests on 2 cores use a fraction)
    read_threads: int = 8         # threads fetching and decoding images (I/O bound on object stores)
    shard_size: int = 2048        # images per unit of work handed to an actor
    ray_address: str | None = None
    predictions: bool = False     # keep (source_id, label, prediction) per image, for paired tests


@dataclass(frozen=True)
class FolderTask:
    key: str                              # e.g. "imagenet-a" or "imagenet-c/fog/3"
    read: ReadSpec                        # where and how to read (image_size is set per model)
    items: tuple[SourceItem, ...]
    protocol: ClassProtocol
    vocabulary: tuple[str, ...] | None    # class names a zero-shot teacher scores (None: the model's own)
    crop_pct: float | None = None         # override (ImageNet-C ships already centre-cropped)


@dataclass
class FolderCounts:
    key: str
    correct: list[int]
    total: list[int]
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[dict[str, str]] = field(default_factory=list)
    predictions: list[tuple[str, int, int]] = field(default_factory=list)  # (source_id, label, prediction)

    @classmethod
    def empty(cls, key: str, num_classes: int) -> "FolderCounts":
        return cls(key, [0] * num_classes, [0] * num_classes)

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def merge(self, other: "FolderCounts") -> "FolderCounts":
        self.correct = [a + b for a, b in zip(self.correct, other.correct)]
        self.total = [a + b for a, b in zip(self.total, other.total)]
        for reason, n in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n
        room = MAX_SKIPPED_EXAMPLES - len(self.skipped_examples)
        self.skipped_examples += other.skipped_examples[:max(0, room)]
        self.predictions += other.predictions
        return self


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _read_ahead(spec: ReadSpec, items: Sequence[SourceItem], batch_size: int,
                threads: int) -> Iterator[tuple[Sequence[SourceItem], list[DecodedImage]]]:
    """Yield (items, decoded) per batch while the next batch is already being read on `threads` threads."""
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        def submit(batch):
            step = max(1, math.ceil(len(batch) / max(1, threads)))
            return [pool.submit(read_items, spec, batch[i:i + step]) for i in range(0, len(batch), step)]

        pending: deque = deque()
        for batch in batches:
            pending.append((batch, submit(batch)))
            if len(pending) > 1:
                done, futures = pending.popleft()
                yield done, [d for f in futures for d in f.result()]
        while pending:
            done, futures = pending.popleft()
            yield done, [d for f in futures for d in f.result()]


def to_batch(pixels: Sequence[np.ndarray], image_size: int) -> torch.Tensor:
    """uint8 (S', S', 3) squares -> float (B, 3, S, S) in [0, 1], centre-cropped to `image_size`."""
    x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)  # (B, 3, S', S')
    top = (x.shape[-1] - image_size) // 2
    x = x[..., top:top + image_size, top:top + image_size]
    return x.float().div_(255)


@torch.inference_mode()
def evaluate_task(model: LoadedModel, task: FolderTask, config: HarnessConfig,
                  device: torch.device, progress=None) -> FolderCounts:
    """Top-1 counts of `model` on the task's images under the task's class protocol."""
    crop_pct = task.crop_pct or model.crop_pct
    read = replace(task.read, image_size=max(model.image_size, round(model.image_size / crop_pct)))
    protocol = task.protocol
    target_of_logit = torch.tensor(protocol.target_of_logit, dtype=torch.long)
    counts = FolderCounts.empty(task.key, len(protocol.target_ids))
    autocast = config.bf16 and device.type == "cuda"
    for items, decoded in _read_ahead(read, task.items, config.batch_size, config.read_threads):
        good = []  # (item, pixels) of the images that decoded; the others are counted and skipped
        for item, d in zip(items, decoded):
            if d.pixels is not None:
                good.append((item, d.pixels))
                continue
            counts.skipped[d.error] = counts.skipped.get(d.error, 0) + 1
            if len(counts.skipped_examples) < MAX_SKIPPED_EXAMPLES:
                counts.skipped_examples.append({"file": item.source_id, "reason": d.error})
        if progress is not None:
            progress.update(len(items))
        if not good:
            continue
        labels = [item.label for item, _ in good]
        x = to_batch([p for _, p in good], model.image_size).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model.module(x)
        positions = top1_predictions(logits.float(), protocol.logit_indices).cpu()
        predicted = target_of_logit[positions]  # folder label, or -1 for a class the folder lacks
        correct, total = class_counts(predicted, torch.tensor(labels), len(protocol.target_ids))
        counts.merge(FolderCounts(task.key, correct.tolist(), total.tolist()))
        if config.predictions:
            counts.predictions += zip((item.source_id for item, _ in good), labels, predicted.tolist())
    return counts


class EvalWorker:
    """Builds the model once per class vocabulary and evaluates tasks; runs in-process or as a Ray actor."""

    def __init__(self, spec: ModelSpec, config: HarnessConfig):
        self.spec, self.config = spec, config
        self.device = resolve_device(config.device)
        self._models: dict[tuple[str, ...] | None, LoadedModel] = {}

    def model_for(self, vocabulary: tuple[str, ...] | None) -> LoadedModel:
        key = vocabulary if self.spec.zero_shot else None
        if key not in self._models:
            self._models[key] = load_model(self.spec, vocabulary, self.device)
        return self._models[key]

    def run(self, task: FolderTask, progress=None) -> FolderCounts:
        return evaluate_task(self.model_for(task.vocabulary), task, self.config, self.device, progress)


def shard_tasks(tasks: Iterable[FolderTask], shard_size: int) -> list[FolderTask]:
    """Split each folder's items into slices of at most `shard_size` images (counts merge back by key)."""
    return [replace(t, items=t.items[i:i + shard_size]) for t in tasks for i in range(0, len(t.items), shard_size)]


def run_tasks(spec: ModelSpec, tasks: Sequence[FolderTask], config: HarnessConfig,
              worker: EvalWorker | None = None) -> dict[str, FolderCounts]:
    """Evaluate every task; returns merged counts by task key (in task order).

    `worker` (optional) is an in-process worker whose models are already built; used when no actors run.
    """
    results = {t.key: FolderCounts.empty(t.key, len(t.protocol.target_ids)) for t in tasks}
    shards = shard_tasks(tasks, config.shard_size)
    actors = _start_actors(spec, config)
    if actors is None:
        from tqdm import tqdm

        worker = worker or EvalWorker(spec, config)
        with tqdm(total=sum(len(s.items) for s in shards), unit="img", file=sys.stderr,
                  disable=not sys.stderr.isatty()) as bar:
            for shard in shards:
                results[shard.key].merge(worker.run(shard, bar))
        return results
    import ray
    from ray.util import ActorPool

    try:
        for counts in ActorPool(actors).map_unordered(lambda actor, shard: actor.run.remote(shard), shards):
            results[counts.key].merge(counts)
    finally:
        for actor in actors:  # give the GPUs back to the cluster at once
            ray.kill(actor)
    return results


def _start_actors(spec: ModelSpec, config: HarnessConfig):
    """Ray actors for data parallelism, or None to evaluate in this process.

    workers=None (auto): one actor per GPU of the Ray cluster named by --ray-address / RAY_ADDRESS (under
    `ray job submit` the driver may sit on a GPU-less head node), or of a local Ray started when this
    machine has several GPUs; in-process otherwise. workers=0 forces in-process; workers=N forces N actors
    (with a GPU each when the cluster has N, else `actor_cpus` CPUs each).
    """
    if config.workers == 0:
        return None
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    import_ray = config.workers is not None or address or torch.cuda.device_count() > 1
    if not import_ray:
        return None
    import ray

    from services.jobs.ray_cluster import connect_ray

    if not ray.is_initialized():
        connect_ray(address, log_to_driver=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    n = config.workers if config.workers is not None else gpus
    if n <= 0:
        return None
    options = {"num_gpus": 1} if gpus >= n else {"num_gpus": 0, "num_cpus": config.actor_cpus}
    remote = ray.remote(EvalWorker).options(**options)
    device = "cuda" if options["num_gpus"] else "cpu"
    return [remote.remote(spec, replace(config, device=device, workers=0)) for _ in range(n)]
