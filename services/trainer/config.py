"""The trainer job's configuration, and what each objective needs from the data (teacher, samples, attack).

One frozen `TrainConfig` per run. It is validated here, before anything is read or started, and each
check names the field it rejects. It travels to the Ray Train workers as a plain dict and is saved as
`<out>/train_config.json`, so a re-run with the same arguments can prove it is the same run and resume.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from dad_core import DistillConfig, Preset, get_preset, parse_overrides
from dad_core.losses import list_objectives, objective_needs

TEACHER_LOGITS = ("stored", "online")
OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("fp32", "bf16")

# Fields that may change between a run and its resume: they do not change what is being trained.
RESUMABLE_CHANGES = frozenset({"out", "epochs", "log_every", "loader_workers", "progress_bar", "max_failures",
                               "ray_address", "cpus_per_worker", "max_steps_per_epoch", "verify_shards"})

# Defaults that depend on the optimizer (lr for a global batch of 256 / 512, Goyal et al. 2017; timm recipes).
_DEFAULT_LR = {"sgd": 0.1, "adamw": 1e-3}
_LR_REFERENCE_BATCH = {"sgd": 256, "adamw": 512}
_DEFAULT_WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.05}


@dataclass(frozen=True)
class TrainConfig:
    """One training run of a timm student; defaults follow a standard ResNet recipe and the paper (App. C)."""

    source: str                                # the clean dataset (ImageFolder or Parquet, any fsspec URL)
    out: str                                   # checkpoints, metrics, exported model (any fsspec URL)
    samples: str | None = None                 # sample set manifest (or set folder) from services.generator
    student: str = "resnet50"                  # a timm model name
    objective: str = "dad"                     # see dad_core.losses.OBJECTIVES
    teacher_logits: str = "stored"             # stored: read from the sample set | online: run the teacher
    preset: str = "paper"                      # teacher / discretizer / attack / distill settings
    overrides: tuple[str, ...] = ()            # preset overrides, "key=value" (dotted keys)
    class_map: str | None = None               # class map for the source (as given to the generator)
    source_format: str = "auto"
    val: str | None = None                     # validation source; default: hold out val_fraction of source
    val_fraction: float = 0.02                 # held-out share of source items when `val` is not given
    # recipe
    epochs: int = 90
    batch_size: int = 128                      # clean examples per worker per step (+ their Q(x') partners)
    optimizer: str = "sgd"
    lr: float | None = None                    # None: 0.1 (SGD) / 1e-3 (AdamW), scaled by global batch
    momentum: float = 0.9
    weight_decay: float | None = None          # None: 1e-4 (SGD) / 0.05 (AdamW); never on biases / norms
    warmup_epochs: float = 5.0
    min_lr: float = 0.0
    randaugment: str | None = None             # timm string, e.g. "rand-m9-mstd0.5"; online logits only
    mixup: float = 0.0                         # Beta(alpha, alpha) mixup; 0 = off; online logits only
    hflip: bool = False                        # random horizontal flip; online logits only
    precision: str = "fp32"                    # fp32 | bf16 (autocast)
    channels_last: bool = False
    seed: int = 0
    # resources
    workers: int = 1                           # Ray Train workers (DDP ranks)
    gpus_per_worker: float = 0.0               # 0: CPU training (gloo)
    cpus_per_worker: float = 1.0
    loader_workers: int = 2                    # DataLoader processes per worker
    shuffle_window: int = 16                   # row groups mixed by the shuffle (see data.block_shuffle)
    max_failures: int = 0                      # Ray Train restarts of failed workers (each resumes)
    ray_address: str | None = None             # None: RAY_ADDRESS if set, else a local Ray
    # reporting
    log_every: int = 10                        # steps between metric lines
    progress_bar: bool = True
    max_steps_per_epoch: int | None = None     # cap (smoke tests, benchmarks)
    storage_options: dict[str, Any] = field(default_factory=dict)  # fsspec options for remote URLs
    verify_shards: bool = True                 # check every shard's sha256 against the manifest before training

    def __post_init__(self):
        def bad(name: str, rule: str):
            raise ValueError(f"TrainConfig.{name} must be {rule}, got {getattr(self, name)!r}")

        if self.objective not in list_objectives():
            bad("objective", f"one of {list_objectives()}")
        for name, allowed in (("teacher_logits", TEACHER_LOGITS), ("optimizer", OPTIMIZERS),
                              ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                bad(name, f"one of {allowed}")
        for name in ("source", "out", "student"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                bad(name, "a non-empty string")
        for name in ("epochs", "batch_size", "workers", "log_every", "shuffle_window"):
            if not _int(getattr(self, name)) or getattr(self, name) < 1:
                bad(name, "an integer >= 1")
        for name in ("loader_workers", "max_failures", "seed"):
            if not _int(getattr(self, name)) or getattr(self, name) < 0:
                bad(name, "an integer >= 0")
        steps = self.max_steps_per_epoch
        if steps is not None and (not _int(steps) or steps < 1):
            bad("max_steps_per_epoch", "an integer >= 1 or None")
        for name in ("momentum", "warmup_epochs", "min_lr", "mixup", "gpus_per_worker"):
            if not _number(getattr(self, name)) or getattr(self, name) < 0:
                bad(name, "a finite number >= 0")
        for name in ("lr", "weight_decay"):
            if getattr(self, name) is not None and (not _number(getattr(self, name)) or getattr(self, name) < 0):
                bad(name, "a finite number >= 0 or None")
        if not _number(self.cpus_per_worker) or self.cpus_per_worker <= 0:
            bad("cpus_per_worker", "a number > 0")
        if not _number(self.val_fraction) or not 0 <= self.val_fraction < 1:
            bad("val_fraction", "in [0, 1)")
        if self.randaugment is not None and not self.randaugment.startswith("rand"):
            bad("randaugment", "a timm RandAugment string such as 'rand-m9-mstd0.5'")
        if not isinstance(self.overrides, tuple):
            object.__setattr__(self, "overrides", tuple(self.overrides))
        if self.needs_samples and not self.samples:
            why = ("its adversarial samples" if self.needs_adversarial
                   else "the teacher's stored logits (or pass --teacher-logits online)")
            raise ValueError(f"TrainConfig.samples is required: objective {self.objective!r} needs {why}")
        if self.uses_teacher and self.teacher_logits == "stored":
            # Stored logits belong to the exact stored pixels; any view change would pair an image with
            # someone else's logits (a silent label-noise bug), so refuse rather than train on it.
            for name, on in (("randaugment", self.randaugment), ("mixup", self.mixup), ("hflip", self.hflip)):
                if on:
                    bad(name, f"off with stored teacher logits (objective {self.objective!r} distils the "
                              "teacher; the stored logits only match the unaugmented image): use "
                              "--teacher-logits online")
        if self.mixup and self.needs_dat:
            bad("mixup", f"0 for objective {self.objective!r} (the student's own attack needs hard labels)")

    # -- what the objective needs ---------------------------------------------------------------------
    @property
    def uses_teacher(self) -> bool:
        """The objective distils teacher logits (stored or online)."""
        return bool(objective_needs(self.objective) & {"teacher_clean", "teacher_adv"})

    @property
    def needs_adversarial(self) -> bool:
        """The objective uses the teacher's adversarial samples Q(x') from the sample set."""
        return "student_adv" in objective_needs(self.objective)

    @property
    def needs_dat(self) -> bool:
        """The objective needs the student's own discrete adversarial sample, made online (DAT)."""
        return "student_dat_adv" in objective_needs(self.objective)

    @property
    def needs_samples(self) -> bool:
        return self.needs_adversarial or (self.uses_teacher and self.teacher_logits == "stored")

    @property
    def needs_teacher_model(self) -> bool:
        """A teacher must be in memory: only for online logits (stored mode never builds one)."""
        return self.uses_teacher and self.teacher_logits == "online"

    @property
    def augments(self) -> bool:
        return bool(self.randaugment or self.mixup or self.hflip)

    # -- resolved values ------------------------------------------------------------------------------
    def resolve_preset(self) -> Preset:
        return get_preset(self.preset, parse_overrides(self.overrides))

    def distill_config(self) -> DistillConfig:
        return self.resolve_preset().distill

    def learning_rate(self) -> float:
        """Peak lr: the given one, or the optimizer's default scaled linearly with the global batch."""
        if self.lr is not None:
            return float(self.lr)
        global_batch = self.batch_size * self.workers
        return _DEFAULT_LR[self.optimizer] * global_batch / _LR_REFERENCE_BATCH[self.optimizer]

    def weight_decay_value(self) -> float:
        return float(self.weight_decay if self.weight_decay is not None else _DEFAULT_WEIGHT_DECAY[self.optimizer])

    # -- serialisation --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["overrides"] = list(self.overrides)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**{**d, "overrides": tuple(d.get("overrides", ()))})

    def resume_conflicts(self, saved: Mapping[str, Any]) -> list[str]:
        """Fields (other than RESUMABLE_CHANGES) whose value differs from a saved run's config."""
        mine = self.to_dict()
        return [f"{k}: saved {saved.get(k)!r}, now {v!r}" for k, v in mine.items()
                if k not in RESUMABLE_CHANGES and k != "storage_options" and saved.get(k) != v]


def _int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
