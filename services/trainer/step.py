"""One training step's forward: a Batch in, dad_core's loss dict out (what the loop backprops and logs).

Eq. (9) per example: the student sees x and, where the teacher accepted it, Q(x'), in ONE forward pass (the
samples are "added to the original dataset", Sec. 3.3, so they share batch statistics like any other
images). Teacher logits come from the batch (`stored`: no teacher in memory) or from the teacher run on
exactly the view the student sees (`online`). DAT's Q(x'_s) is made here from the student itself, with DAT's
own attack settings (preset section `dat`) and nothing but the input gradient it needs.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from dad_core import DistillConfig, PixelSpaceClassifier
from dad_core.dat import DATConfig, dat_adversarial
from dad_core.objectives import ObjectiveInputs, compute_objective, objective_needs
from schemas.jobs.checks import ObjectiveNeeds

Tensor = torch.Tensor


@dataclass
class Batch:
    """A collated batch. Images are uint8 (B, 3, S, S); logits are the stored float16 values as float32."""

    images: Tensor
    labels: Tensor                        # (B,) int64
    teacher_logits: Tensor | None = None  # (B, K) phi(x), stored
    adv_images: Tensor | None = None      # (B, 3, S, S) Q(x'); zeros where has_adv is False
    adv_teacher_logits: Tensor | None = None  # (B, K) phi(Q(x')), stored
    has_adv: Tensor | None = None         # (B,) bool: an accepted Q(x') partner exists

    def __len__(self) -> int:
        return self.labels.shape[0]

    def pin_memory(self) -> "Batch":
        return Batch(*(t.pin_memory() if t is not None else None for t in self._fields()))

    def _fields(self):
        return (self.images, self.labels, self.teacher_logits, self.adv_images, self.adv_teacher_logits,
                self.has_adv)


@dataclass(frozen=True)
class StepSettings:
    objective: str
    distill: DistillConfig = field(default_factory=DistillConfig)
    dat: DATConfig = field(default_factory=DATConfig)  # DAT: the student's own attack
    mixup: float = 0.0
    precision: str = "fp32"
    channels_last: bool = False


@dataclass
class StepModels:
    """`student` is what forward/backward goes through (maybe DDP); `pixel_student` wraps the bare model."""

    student: nn.Module
    pixel_student: PixelSpaceClassifier
    teacher: nn.Module | None = None      # online logits only
    discretizer: nn.Module | None = None  # DAT only


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_pixels(images: Tensor, device: torch.device, channels_last: bool) -> Tensor:
    """uint8 (B, 3, S, S) -> float in [0, 1] on `device`."""
    x = images.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _scatter_rows(values: Tensor, rows: Tensor, batch_size: int) -> Tensor:
    """(A, K) values of the selected rows -> (B, K) with zeros elsewhere (differentiable)."""
    out = values.new_zeros((batch_size, values.shape[1]))
    return out.index_copy(0, rows, values)


def compute_losses(models: StepModels, batch: Batch, settings: StepSettings, device: torch.device) -> dict[str, Tensor]:
    """Forward the student (and the online teacher / DAT attack) and evaluate the objective."""
    cl = settings.channels_last
    x = to_pixels(batch.images, device, cl)
    y = batch.labels.to(device, non_blocking=True)
    has_adv = batch.has_adv
    adv = to_pixels(batch.adv_images, device, cl) if batch.adv_images is not None else None
    lam, y_mix = 1.0, None
    if settings.mixup > 0:
        # Mixup with the flipped batch (as timm does); a mixed Q(x') exists only if both partners do.
        lam = float(torch.distributions.Beta(settings.mixup, settings.mixup).sample())
        x, y_mix = lam * x + (1 - lam) * x.flip(0), y.flip(0)
        if adv is not None:
            adv, has_adv = lam * adv + (1 - lam) * adv.flip(0), has_adv & has_adv.flip(0)

    with autocast(device, settings.precision):
        dat_adv = (dat_adversarial(models.pixel_student, models.discretizer, x.float(), y, settings.dat)
                   if models.discretizer is not None else None)
        rows = has_adv.nonzero().squeeze(1).to(device) if has_adv is not None else None
        parts = [x]  # (B + A + D, 3, S, S): clean, accepted Q(x'), DAT's Q(x'_s), in one forward pass
        if rows is not None and len(rows):
            parts.append(adv[rows])
        if dat_adv is not None:
            parts.append(dat_adv)
        inputs = torch.cat(parts) if len(parts) > 1 else x
        logits = models.student((inputs - models.pixel_student.mean) / models.pixel_student.std).float()
        teacher_clean, teacher_adv = _teacher_logits(models, batch, x, adv, rows, device,
                                                     ObjectiveNeeds(objective_needs(settings.objective))
                                                     .teacher_on_adversarial)

    b = len(batch)
    student_clean = logits[:b]
    n_adv = len(rows) if rows is not None else 0
    oi = ObjectiveInputs(labels=y, student_clean=student_clean, teacher_clean=teacher_clean)
    if rows is not None:
        oi.student_adv = _scatter_rows(logits[b:b + n_adv], rows, b)
        oi.teacher_adv = teacher_adv
        oi.accepted = has_adv.to(device)
    if dat_adv is not None:
        oi.student_dat_adv = logits[b + n_adv:]
    out = compute_objective(settings.objective, oi, settings.distill)
    if y_mix is None:
        return out
    # Labels enter every objective only through linear CE terms, so mixing the losses is mixing the labels.
    oi.labels = y_mix
    other = compute_objective(settings.objective, oi, settings.distill)
    return {k: lam * v + (1 - lam) * other[k] for k, v in out.items()}


def _teacher_logits(models: StepModels, batch: Batch, x: Tensor, adv: Tensor | None, rows: Tensor | None,
                    device: torch.device, need_adv: bool) -> tuple[Tensor | None, Tensor | None]:
    """phi(x) and phi(Q(x')) as (B, K): from the batch (stored) or the teacher on the same view (online)."""
    if models.teacher is None:
        clean = batch.teacher_logits.to(device, non_blocking=True) if batch.teacher_logits is not None else None
        stored_adv = batch.adv_teacher_logits
        return clean, (stored_adv.to(device, non_blocking=True) if stored_adv is not None else None)
    with torch.no_grad():
        clean = models.teacher(x).float()
        if rows is None or not need_adv:
            return clean, None
        if not len(rows):
            return clean, torch.zeros_like(clean)
        return clean, _scatter_rows(models.teacher(adv[rows]).float(), rows, len(x))
