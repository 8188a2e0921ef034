"""The trainer job's configuration: `schemas.jobs.TrainJobConfig` (defined once, validated the same way by the
API and the job), plus what the trainer derives from it (what the objective needs, resolved lr, the preset).

It is validated before anything is read or started, each check naming the field it rejects; it travels to
the Ray Train workers as a plain dict next to the resolved preset, and is saved as `<out>/train_config.json`,
so a re-run with the same arguments can prove it is the same run and resume.
"""
from __future__ import annotations

from typing import Any, Mapping

import services.jobs  # noqa: F401 - installs the dad_core checks the config validates with
from dad_core import DistillConfig, Preset
from dad_core.objectives import objective_needs
from schemas.jobs.checks import ObjectiveNeeds
from schemas.jobs.train import OPTIMIZERS, TEACHER_LOGITS, TrainJobConfig  # noqa: F401 - re-exported
from dad_core.presets import parse_override
from services.jobs.presets import resolve_preset

PRECISIONS = ("fp32", "bf16")

# Fields that may change between a run and its resume: they do not change what is being trained.
RESUMABLE_CHANGES = frozenset({"out", "epochs", "log_every", "loader_workers", "progress_bar", "max_failures",
                               "ray_address", "cpus_per_worker", "max_steps_per_epoch", "verify_shards"})

# Defaults that depend on the optimizer (lr for a global batch of 256 / 512, Goyal et al. 2017; timm recipes).
_DEFAULT_LR = {"sgd": 0.1, "adamw": 1e-3}
_LR_REFERENCE_BATCH = {"sgd": 256, "adamw": 512}
_DEFAULT_WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.05}


class TrainConfig(TrainJobConfig):
    """One training run of a timm student (the job's config model, with the trainer's derived values)."""

    # -- what the objective needs ---------------------------------------------------------------------
    @property
    def needs(self) -> ObjectiveNeeds:
        return ObjectiveNeeds(objective_needs(self.objective))

    @property
    def uses_teacher(self) -> bool:
        return self.needs.teacher

    @property
    def needs_adversarial(self) -> bool:
        return self.needs.adversarial

    @property
    def needs_dat(self) -> bool:
        return self.needs.student_attack

    @property
    def needs_samples(self) -> bool:
        return self.needs.sample_set(self.teacher_logits) is not None

    @property
    def needs_teacher_model(self) -> bool:
        return self.needs.teacher_model(self.teacher_logits)

    @property
    def augments(self) -> bool:
        return bool(self.randaugment or self.mixup or self.hflip or self.random_resized_crop)

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    # -- resolved values ------------------------------------------------------------------------------
    def preset_overrides(self) -> dict[str, Any]:
        extra = {} if self.label_smoothing is None else {"distill.label_smoothing": self.label_smoothing}
        return {**self.overrides, **extra}

    def resolve_preset(self) -> Preset:
        """The run's preset; the job resolves it once (launcher) and hands the object to its workers."""
        return resolve_preset(self.preset, self.preset_overrides())

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
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        return cls.model_validate(dict(d))

    def resume_conflicts(self, saved: Mapping[str, Any]) -> list[str]:
        """Fields (other than RESUMABLE_CHANGES) whose value differs from a saved run's config."""
        saved = _upgrade_saved(saved)
        mine = self.to_dict()
        return [f"{k}: saved {saved.get(k)!r}, now {v!r}" for k, v in mine.items()
                if k not in RESUMABLE_CHANGES and k != "storage_options" and saved.get(k) != v]


def _upgrade_saved(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A train_config.json written before configs were typed: overrides as "k=v" text, `precision`,
    label smoothing inside the overrides."""
    saved = dict(saved)
    if isinstance(saved.get("overrides"), list):
        saved["overrides"] = dict(parse_override(item) for item in saved["overrides"])
    if "precision" in saved and "bf16" not in saved:
        saved["bf16"] = saved.pop("precision") == "bf16"
    saved.setdefault("student_init", "random")  # before student_init existed every student started at random
    saved.setdefault("adversarial_rows", "accepted")  # before the controls existed: Eq. 9's accepted Q(x')
    if "label_smoothing" not in saved and "distill.label_smoothing" in saved.get("overrides", {}):
        saved["label_smoothing"] = saved["overrides"].pop("distill.label_smoothing")
    return saved
