"""Training objectives for DAD and the baselines it is compared against (paper Sec. 3.2, 3.3, 4.2, App. C).

All functions are pure: logits in, a dict out. Every dict has "loss" (the scalar to backprop) plus one
detached scalar per term so the trainer can log each of them. Teacher logits are constants here: they may
come from a live teacher or from storage (often float16), so they are detached and cast to the student's
dtype, and the loss never needs to know which.

Shapes: logits are (B, K), labels are int64 (B,), `accepted` masks are bool (B,). Anything else raises a
ValueError naming the argument; nothing is broadcast silently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
LossDict = dict[str, Tensor]


ADVERSARIAL_WEIGHTINGS = ("batch", "accepted")


@dataclass(frozen=True)
class DistillConfig:
    """Loss hyperparameters. Defaults follow the paper (App. C) and each baseline's official setting."""

    temperature: float = 4.0  # KD temperature t = 4 (App. C)
    alpha: float = 0.5  # weight a of each KL term (App. C, following [64]); ARD's mixing weight
    label_smoothing: float = 0.0  # applied to every cross-entropy term
    dist_beta: float = 1.0  # DIST inter-class weight (Huang et al. 2022)
    dist_gamma: float = 1.0  # DIST intra-class weight
    dist_temperature: float = 1.0  # DIST softmax temperature tau
    rslad_alpha: float = 5 / 6  # RSLAD weight on the adversarial KL term (Zi et al. 2021)
    # How DAD's adversarial KL is averaged: "batch" = sum over accepted rows / batch size, so each accepted
    # Q(x') weighs as much as one clean example (the samples are added to the dataset, Sec. 3.3); "accepted" =
    # mean over accepted rows, so at low acceptance a few samples carry the weight of a whole batch.
    adversarial_weighting: str = "batch"

    def __post_init__(self):
        def bad(name: str, rule: str):
            raise ValueError(f"DistillConfig.{name} must be {rule}, got {getattr(self, name)!r}")

        for name in ("temperature", "dist_temperature"):
            if not _finite(getattr(self, name)) or not getattr(self, name) > 0:
                bad(name, "a finite number > 0")
        for name in ("alpha", "dist_beta", "dist_gamma"):
            if not _finite(getattr(self, name)) or not getattr(self, name) >= 0:
                bad(name, "a finite number >= 0")
        if not _finite(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            bad("label_smoothing", "in [0, 1)")
        if not _finite(self.rslad_alpha) or not 0 <= self.rslad_alpha <= 1:
            bad("rslad_alpha", "in [0, 1]")
        if self.adversarial_weighting not in ADVERSARIAL_WEIGHTINGS:
            bad("adversarial_weighting", f"one of {ADVERSARIAL_WEIGHTINGS}")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ----------------------------------------------------------------------------- input checks

def _check_logits(x: Tensor, name: str, like: Optional[Tensor] = None) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty logits of shape (B, K), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    if like is not None and x.shape != like.shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)} but must match the student's {tuple(like.shape)}")


def _check_labels(labels: Tensor, logits: Tensor, name: str = "labels") -> None:
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64:
        got = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{name} must be an int64 tensor of class indices, got {got}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"{name} must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")


def _check_mask(mask: Optional[Tensor], logits: Tensor, name: str = "accepted") -> Tensor:
    """Return a bool (B,) mask on the logits' device; None means every row is selected."""
    if mask is None:
        return torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a bool tensor, got {got}")
    if mask.shape != logits.shape[:1]:
        raise ValueError(f"{name} must have shape ({logits.shape[0]},), got {tuple(mask.shape)}")
    return mask.to(logits.device)


def _teacher(t: Tensor, student: Tensor) -> Tensor:
    """Teacher logits are constants of the student's dtype, wherever they came from (live or float16 storage)."""
    return t.detach().to(device=student.device, dtype=student.dtype)


# ----------------------------------------------------------------------------- building blocks

def kl_divergence_t(student_logits: Tensor, teacher_logits: Tensor, temperature: float,
                    mask: Optional[Tensor] = None, per_batch: bool = False) -> Tensor:
    """Hinton's KD term l2 of Eq. (6): T^2 * KL(softmax(t/T) || softmax(s/T)), mean over rows in `mask`
    (per_batch=True: summed over those rows and divided by the number of rows B instead).

    T^2 keeps the gradient scale independent of T. Rows outside `mask` are replaced by zeros *before* the
    softmax (so garbage or non-finite logits there cannot leak NaNs) and masked out after it, so they add
    exactly zero loss and exactly zero gradient. If no row is selected the result is an exact 0 that is still
    connected to `student_logits`, so backward works. Masking with `where` avoids a host sync on GPU.
    """
    _check_logits(student_logits, "student_logits")
    _check_logits(teacher_logits, "teacher_logits", like=student_logits)
    if not (_finite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    mask = _check_mask(mask, student_logits, "mask")
    t = _teacher(teacher_logits, student_logits)
    rows = mask[:, None]
    s = torch.where(rows, student_logits, torch.zeros_like(student_logits))
    t = torch.where(rows, t, torch.zeros_like(t))
    per_row = F.kl_div(F.log_softmax(s / temperature, dim=-1), F.log_softmax(t / temperature, dim=-1),
                       log_target=True, reduction="none").sum(-1)
    per_row = torch.where(mask, per_row, torch.zeros_like(per_row))
    denominator = mask.numel() if per_batch else mask.sum().clamp_min(1)
    return per_row.sum() / denominator * (temperature * temperature)


def _ce(student_logits: Tensor, labels: Tensor, cfg: DistillConfig) -> Tensor:
    return F.cross_entropy(student_logits, labels, label_smoothing=cfg.label_smoothing)


def _zero(like: Tensor) -> Tensor:
    return like.new_zeros(())


def _out(loss: Tensor, **terms: Tensor) -> LossDict:
    return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}


# ----------------------------------------------------------------------------- objectives

def cross_entropy(student_logits: Tensor, labels: Tensor, cfg: DistillConfig) -> LossDict:
    """Plain supervised training, l1 of Eq. (6) (with optional label smoothing)."""
    _check_logits(student_logits, "student_logits")
    _check_labels(labels, student_logits)
    ce = _ce(student_logits, labels, cfg)
    return _out(ce, ce=ce)


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, cfg: DistillConfig) -> LossDict:
    """Standard KD, Eq. (7): CE(s(x), y) + a * KL_T(s(x) || t(x))."""
    _check_logits(student_logits, "student_logits")
    _check_logits(teacher_logits, "teacher_logits", like=student_logits)
    _check_labels(labels, student_logits)
    ce = _ce(student_logits, labels, cfg)
    kd = kl_divergence_t(student_logits, teacher_logits, cfg.temperature)
    return _out(ce + cfg.alpha * kd, ce=ce, kd=kd)


def _check_adv(student_clean: Tensor, student_adv: Optional[Tensor], teacher_adv: Optional[Tensor],
               accepted: Optional[Tensor], need_teacher_adv: bool = True) -> None:
    if student_adv is None:
        for name, x in (("teacher_adv", teacher_adv), ("accepted", accepted)):
            if x is not None:
                raise ValueError(f"{name} was given without student_adv")
        return
    _check_logits(student_adv, "student_adv", like=student_clean)
    if need_teacher_adv:
        if teacher_adv is None:
            raise ValueError("teacher_adv is required when student_adv is given")
        _check_logits(teacher_adv, "teacher_adv", like=student_clean)
    _check_mask(accepted, student_clean)


def _fraction(accepted: Optional[Tensor], student_adv: Optional[Tensor], like: Tensor) -> Tensor:
    if student_adv is None:
        return _zero(like)
    if accepted is None:
        return like.new_ones(())
    return accepted.to(like.dtype).mean()


def dad_loss(student_clean: Tensor, teacher_clean: Tensor, labels: Tensor,
             student_adv: Optional[Tensor], teacher_adv: Optional[Tensor], accepted: Optional[Tensor],
             cfg: DistillConfig) -> LossDict:
    """DAD, Eq. (9): CE(s(x), y) + a*KL_T(s(x) || t(x)) + a*KL_T(s(Q(x')) || t(Q(x'))).

    The adversarial term uses no label (Sec. 3.2: labels of x' may be wrong) and only rows the teacher still
    classifies correctly (`accepted`, Eq. 9's phi(Q(x')) = y) contribute. cfg.adversarial_weighting "batch"
    divides their sum by the batch size B (an accepted Q(x') counts as one more example), "accepted" by their
    number. App. C weights the second KL term by a too. student_adv=None (no adversarial partner) makes it zero.
    """
    _check_logits(student_clean, "student_clean")
    _check_logits(teacher_clean, "teacher_clean", like=student_clean)
    _check_labels(labels, student_clean)
    _check_adv(student_clean, student_adv, teacher_adv, accepted)
    ce = _ce(student_clean, labels, cfg)
    kd_clean = kl_divergence_t(student_clean, teacher_clean, cfg.temperature)
    kd_adv = (_zero(ce) if student_adv is None
              else kl_divergence_t(student_adv, teacher_adv, cfg.temperature, accepted,
                                   per_batch=cfg.adversarial_weighting == "batch"))
    loss = ce + cfg.alpha * kd_clean + cfg.alpha * kd_adv
    return _out(loss, ce=ce, kd_clean=kd_clean, kd_adv=kd_adv,
                accepted_fraction=_fraction(accepted, student_adv, ce))


def _pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of each row of a with the same row of b (as in the official DIST code)."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + eps)


def dist_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, cfg: DistillConfig) -> LossDict:
    """DIST (Huang et al. 2022): match class *relations* instead of exact probabilities.

    With p = softmax(z / tau): inter = 1 - mean_i pearson(p_s[i], p_t[i]) (per sample, across classes),
    intra = 1 - mean_k pearson(p_s[:, k], p_t[:, k]) (per class, across the batch).
    loss = CE + beta*tau^2*inter + gamma*tau^2*intra; the logged inter/intra are the unweighted relations.
    """
    _check_logits(student_logits, "student_logits")
    _check_logits(teacher_logits, "teacher_logits", like=student_logits)
    _check_labels(labels, student_logits)
    tau = cfg.dist_temperature
    p_s = F.softmax(student_logits / tau, dim=-1)
    p_t = F.softmax(_teacher(teacher_logits, student_logits) / tau, dim=-1)
    inter = 1 - _pearson_rows(p_s, p_t).mean()
    intra = 1 - _pearson_rows(p_s.T, p_t.T).mean()
    ce = _ce(student_logits, labels, cfg)
    loss = ce + tau * tau * (cfg.dist_beta * inter + cfg.dist_gamma * intra)
    return _out(loss, ce=ce, inter=inter, intra=intra)


def ard_loss(student_clean: Tensor, student_adv: Tensor, teacher_clean: Tensor, labels: Tensor,
             cfg: DistillConfig, accepted: Optional[Tensor] = None) -> LossDict:
    """ARD (Goldblum et al. 2020): (1-a)*CE(s(x), y) + a*KL_T(s(x_adv) || t(x)).

    The student's logits on the augmented sample (here a DAD sample, Sec. 4.2) are matched to the teacher's
    logits on the *clean* sample. Only `accepted` rows contribute to the KL term (mean over them).
    """
    _check_logits(student_clean, "student_clean")
    _check_logits(teacher_clean, "teacher_clean", like=student_clean)
    _check_labels(labels, student_clean)
    _check_adv(student_clean, student_adv, None, accepted, need_teacher_adv=False)
    if student_adv is None:
        raise ValueError("student_adv is required by ard_loss")
    if cfg.alpha > 1:
        raise ValueError(f"DistillConfig.alpha must be <= 1 for ARD (CE weight is 1 - alpha), got {cfg.alpha}")
    ce = _ce(student_clean, labels, cfg)
    kd_adv = kl_divergence_t(student_adv, teacher_clean, cfg.temperature, accepted)
    loss = (1 - cfg.alpha) * ce + cfg.alpha * kd_adv
    return _out(loss, ce=ce, kd_adv=kd_adv, accepted_fraction=_fraction(accepted, student_adv, ce))


def rslad_loss(student_clean: Tensor, student_adv: Tensor, teacher_clean: Tensor, cfg: DistillConfig,
               accepted: Optional[Tensor] = None) -> LossDict:
    """RSLAD (Zi et al. 2021): ARD with CE replaced by KL to the teacher's soft labels, and no labels at all.

    loss = (1-r)*KL_1(s(x) || t(x)) + r*KL_1(s(x_adv) || t(x)), r = rslad_alpha. As in the official code the
    KL terms use temperature 1 (so T^2 = 1), independent of cfg.temperature.
    """
    _check_logits(student_clean, "student_clean")
    _check_logits(teacher_clean, "teacher_clean", like=student_clean)
    _check_adv(student_clean, student_adv, None, accepted, need_teacher_adv=False)
    if student_adv is None:
        raise ValueError("student_adv is required by rslad_loss")
    r = cfg.rslad_alpha
    kd_clean = kl_divergence_t(student_clean, teacher_clean, 1.0)
    kd_adv = kl_divergence_t(student_adv, teacher_clean, 1.0, accepted)
    loss = (1 - r) * kd_clean + r * kd_adv
    return _out(loss, kd_clean=kd_clean, kd_adv=kd_adv, accepted_fraction=_fraction(accepted, student_adv, kd_clean))


def dat_loss(student_clean: Tensor, student_dat_adv: Tensor, labels: Tensor, cfg: DistillConfig) -> LossDict:
    """DAT (Mao et al. 2022), Eq. (5): CE(s(x), y) + CE(s(Q(x'_s)), y).

    x'_s is the student's *own* discrete adversarial sample, generated elsewhere (online).
    """
    _check_logits(student_clean, "student_clean")
    _check_logits(student_dat_adv, "student_dat_adv", like=student_clean)
    _check_labels(labels, student_clean)
    ce = _ce(student_clean, labels, cfg)
    ce_dat = _ce(student_dat_adv, labels, cfg)
    return _out(ce + ce_dat, ce=ce, ce_dat=ce_dat)


def dat_dad_loss(student_clean: Tensor, teacher_clean: Tensor, labels: Tensor,
                 student_adv: Optional[Tensor], teacher_adv: Optional[Tensor], accepted: Optional[Tensor],
                 student_dat_adv: Tensor, cfg: DistillConfig) -> LossDict:
    """DAT + DAD (App. C): Eq. (9) plus a * CE(s(Q(x'_s)), y) on the student's own DAT sample."""
    _check_logits(student_clean, "student_clean")
    _check_logits(student_dat_adv, "student_dat_adv", like=student_clean)
    out = dad_loss(student_clean, teacher_clean, labels, student_adv, teacher_adv, accepted, cfg)
    ce_dat = _ce(student_dat_adv, labels, cfg)
    out["loss"] = out["loss"] + cfg.alpha * ce_dat
    out["ce_dat"] = ce_dat.detach()
    return out
