"""Discrete adversarial samples of the teacher (Sec. 3.3, Eq. 9; App. C).

    x_0  = Q(x)
    x_t+1 = clip(x_t + lr * dir(grad CE(phi(x_t), y)))      (one step, lr 0.1 in the paper)
    x'   = Q(x_T),   kept only if argmax phi(Q(x')) == y    (the teacher as oracle)

The perturbation maximises the *teacher's* loss (not the student's, as in DAT), so samples need to be
made only once per teacher and are reused by every student.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dad_core.images import check_images, check_labels

GRADIENT_DIRECTIONS = ("sign", "raw", "l2")


@dataclass(frozen=True)
class AttackConfig:
    """Attack parameters; defaults follow App. C (one iteration, attack learning rate 0.1)."""

    steps: int = 1
    step_size: float = 0.1                  # the paper's "attack learning rate", in [0, 1] pixel units
    grad: str = "sign"                      # "sign" (FGSM-style), "raw" gradient, or "l2"-normalised per sample
    epsilon: float | None = None            # optional L-inf bound around Q(x); None = unbounded (the paper)
    random_start: bool = False              # uniform start in the epsilon ball (needs epsilon)
    through_discretizer: bool = False       # exact gradient of CE(phi(Q(x_t))) instead of CE(phi(x_t))
    seed: int = 0

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"attack.steps must be >= 0, got {self.steps}")
        if not self.step_size >= 0:
            raise ValueError(f"attack.step_size must be >= 0, got {self.step_size}")
        if self.grad not in GRADIENT_DIRECTIONS:
            raise ValueError(f"attack.grad must be one of {GRADIENT_DIRECTIONS}, got {self.grad!r}")
        if self.epsilon is not None and not self.epsilon > 0:
            raise ValueError(f"attack.epsilon must be > 0 or null, got {self.epsilon}")
        if self.random_start and self.epsilon is None:
            raise ValueError("attack.random_start needs attack.epsilon")


@dataclass
class Judgement:
    """The teacher's verdict on a batch: what the sample store records next to each image."""

    logits: torch.Tensor       # (B, K) float32
    prediction: torch.Tensor   # (B,) int64
    confidence: torch.Tensor   # (B,) softmax probability of the prediction
    correct: torch.Tensor      # (B,) bool, prediction == label


@dataclass
class DADBatch:
    clean: torch.Tensor                        # x, (B, 3, H, W)
    discretized: torch.Tensor                  # Q(x)
    adversarial: torch.Tensor                  # Q(x')
    teacher_logits_clean: torch.Tensor         # phi(x), (B, K)
    teacher_logits_discretized: torch.Tensor   # phi(Q(x))
    teacher_logits_adversarial: torch.Tensor   # phi(Q(x'))
    accepted: torch.Tensor                     # (B,) bool: argmax phi(Q(x')) == y


@torch.no_grad()
def judge(teacher: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Judgement:
    """Score `images` with the teacher; `correct` is the acceptance test of Eq. (9)."""
    logits = teacher(images).float()
    check_labels(labels, images.shape[0], logits.shape[-1])
    confidence, prediction = logits.softmax(-1).max(-1)
    return Judgement(logits, prediction, confidence, prediction == labels.to(prediction.device))


def _direction(grad: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "sign":
        return grad.sign()
    if kind == "l2":
        return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return grad


def attack_step_gradient(teacher: nn.Module, discretizer: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                         through_discretizer: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(d CE / d x, teacher logits) at x; frozen models, so only the input gets a gradient."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = teacher(discretizer(x) if through_discretizer else x)
        loss = F.cross_entropy(logits.float(), labels, reduction="sum")  # sum: per-sample gradients unscaled
        (grad,) = torch.autograd.grad(loss, x)
    return grad, logits.detach().float()


def generate_dad_batch(teacher: nn.Module, discretizer: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       config: AttackConfig = AttackConfig(), seed: int | None = None) -> DADBatch:
    """Make Q(x') for a batch and the teacher's logits on x and Q(x'); deterministic for a given seed."""
    check_images(images)
    with torch.no_grad():
        logits_clean = teacher(images).float()
        check_labels(labels, images.shape[0], logits_clean.shape[-1])
        x0 = discretizer(images).detach()  # Q(x)
    x = x0
    if config.random_start:
        gen = torch.Generator(device="cpu").manual_seed(config.seed if seed is None else seed)
        noise = torch.rand(x0.shape, generator=gen, dtype=torch.float32).to(x0) * 2 - 1
        x = (x0 + config.epsilon * noise).clamp(0, 1)
    logits_q = None
    for _ in range(config.steps):
        grad, logits = attack_step_gradient(teacher, discretizer, x, labels, config.through_discretizer)
        logits_q = logits if logits_q is None else logits_q
        x = x + config.step_size * _direction(grad, config.grad)
        if config.epsilon is not None:
            x = x0 + (x - x0).clamp(-config.epsilon, config.epsilon)
        x = x.clamp(0, 1).detach()
    with torch.no_grad():
        if logits_q is None or config.random_start or config.through_discretizer:
            logits_q = teacher(x0).float()
        adversarial = discretizer(x)  # Q(x')
        logits_adv = teacher(adversarial).float()
    return DADBatch(images, x0, adversarial, logits_clean, logits_q, logits_adv,
                    logits_adv.argmax(-1) == labels)
