"""Discrete adversarial samples of the teacher (Sec. 3.3, Eq. 9; App. C).

    x_0  = Q(x), or with probability p a random point on the eps-sphere around it (random start)
    x_t+1 = proj_eps(x_t + lr * dir(grad CE(phi(x_t), y)))    (one step, lr 0.1, eps 0.1, p 0.8 in App. C)
    x'   = Q(x_T),   kept only if argmax phi(Q(x')) == y      (the teacher as oracle)

App. C's "one iteration, attack learning rate 0.1" is DAT's official attack (easyrobust `pgd_generator`,
attack_type='L2', eps=0.1, attack_lr=0.1, random_start_prob=0.8): the step is the gradient normalised to unit
L2 norm per sample, the projection is onto the L2 ball of radius eps around the start point Q(x), and the random
start is a random L2 direction of length eps. `norm="linf"` gives the sign step, box projection and uniform
start of the L-inf threat model instead. The official DAD generator uses the same L2 form with lr 0.01.

Controls on the same code path (so a comparison isolates one part of DAD): `steps=0` gives x' = Q(x), i.e.
Q(x') = Q(Q(x)) with no delta; `delta="random"` runs the attack, then replaces each sample's delta by a random
direction of the same norm. `dad_core.perturbation` measures what a delta changed.

The perturbation maximises the *teacher's* loss (not the student's, as in DAT), so samples need to be
made only once per teacher and are reused by every student.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dad_core.images import check_images, check_labels

NORMS = ("l2", "linf")
GRADIENT_DIRECTIONS = ("auto", "sign", "raw", "l2")
DELTAS = ("adversarial", "random")


@dataclass(frozen=True)
class AttackConfig:
    """Attack parameters; defaults are App. C's attack (DAT's official L2 attack, one step of 0.1)."""

    steps: int = 1
    step_size: float = 0.1                  # the paper's "attack learning rate", in [0, 1] pixel units
    norm: str = "l2"                        # threat model: step direction, projection and random start
    epsilon: float | None = 0.1             # radius of the `norm` ball around Q(x); None = unbounded
    random_start: float = 0.8               # probability, per sample, of starting at a random point of the sphere
    grad: str = "auto"                      # step direction: "auto" = the norm's (l2: g/|g|_2, linf: sign g),
                                            # or "sign", "l2" (normalised per sample), "raw" gradient
    through_discretizer: bool = False       # straight-through gradient of CE(phi(Q(x_t))) instead of CE(phi(x_t))
    delta: str = "adversarial"              # "random": control, the attack's delta replaced per sample by a random
                                            # direction of the same `norm` (isolates the adversarial direction);
                                            # steps=0 is the other control, Q(Q(x)): no delta at all
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.random_start, bool):  # configs written before it was a probability
            object.__setattr__(self, "random_start", 1.0 if self.random_start else 0.0)
        if self.steps < 0:
            raise ValueError(f"attack.steps must be >= 0, got {self.steps}")
        if not self.step_size >= 0:
            raise ValueError(f"attack.step_size must be >= 0, got {self.step_size}")
        if self.norm not in NORMS:
            raise ValueError(f"attack.norm must be one of {NORMS}, got {self.norm!r}")
        if self.delta not in DELTAS:
            raise ValueError(f"attack.delta must be one of {DELTAS}, got {self.delta!r}")
        if self.grad not in GRADIENT_DIRECTIONS:
            raise ValueError(f"attack.grad must be one of {GRADIENT_DIRECTIONS}, got {self.grad!r}")
        if self.epsilon is not None and not self.epsilon > 0:
            raise ValueError(f"attack.epsilon must be > 0 or null, got {self.epsilon}")
        if not isinstance(self.random_start, (int, float)) or not 0 <= self.random_start <= 1:
            raise ValueError(f"attack.random_start must be a probability in [0, 1], got {self.random_start!r}")
        if self.random_start > 0 and self.epsilon is None:
            raise ValueError("attack.random_start > 0 needs attack.epsilon (the radius of the random start)")

    @property
    def direction(self) -> str:
        """The step direction actually used: `grad`, or the norm's steepest ascent when grad is "auto"."""
        if self.grad != "auto":
            return self.grad
        return "l2" if self.norm == "l2" else "sign"


def attack_from_dict(d: dict) -> AttackConfig:
    """An AttackConfig from a stored dict, including ones written before `norm` existed.

    Those (random_start a bool, no `norm`) only knew the L-inf box, so they read back as norm "linf" and a
    random start probability of 0 or 1: the manifest of an old sample set still says what made it.
    """
    d = dict(d)
    if "norm" not in d and "grad" in d and isinstance(d.get("random_start"), bool):
        d["norm"] = "linf"
        d.setdefault("epsilon", None)
    return AttackConfig(**d)


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
    perturbed: torch.Tensor | None = None      # x_T = Q(x) + delta, before the final Q
    codes_discretized: torch.Tensor | None = None   # (B, N) Q's code indices of x (None: Q has no codes)
    codes_adversarial: torch.Tensor | None = None   # (B, N) code indices of x_T


@torch.no_grad()
def judge(teacher: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Judgement:
    """Score `images` with the teacher; `correct` is the acceptance test of Eq. (9)."""
    logits = teacher(images).float()
    check_labels(labels, images.shape[0], logits.shape[-1])
    confidence, prediction = logits.softmax(-1).max(-1)
    return Judgement(logits, prediction, confidence, prediction == labels.to(prediction.device))


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.ndim - 1)))  # (B,) -> (B, 1, 1, 1)


def _l2_normalise(t: torch.Tensor) -> torch.Tensor:
    return t / _per_sample(t.flatten(1).norm(dim=1).clamp_min(1e-12), t)


def _direction(grad: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "sign":
        return grad.sign()
    if kind == "l2":
        return _l2_normalise(grad)
    return grad


def project(x: torch.Tensor, x0: torch.Tensor, norm: str, epsilon: float | None) -> torch.Tensor:
    """x moved into the `norm` ball of radius epsilon around x0 (per sample), then into [0, 1]."""
    delta = x - x0
    if epsilon is not None:
        if norm == "l2":
            delta = delta.renorm(p=2, dim=0, maxnorm=epsilon)  # rescales each sample whose L2 norm exceeds eps
        else:
            delta = delta.clamp(-epsilon, epsilon)
    return (x0 + delta).clamp(0, 1)


def random_start(x0: torch.Tensor, config: AttackConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(start points, (B,) bool of the samples that got a random start), drawn on the CPU from `seed`.

    Each sample starts at random with probability `config.random_start` (DAT's code draws this once per batch;
    per sample gives the same expected fraction with less variance): a uniform direction on the L2 sphere of
    radius eps, or a uniform point of the L-inf box.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    chosen = torch.rand(x0.shape[0], generator=gen) < config.random_start
    if config.norm == "l2":
        noise = config.epsilon * _l2_normalise(torch.randn(x0.shape, generator=gen, dtype=torch.float32))
    else:
        noise = config.epsilon * (torch.rand(x0.shape, generator=gen, dtype=torch.float32) * 2 - 1)
    noise = noise * _per_sample(chosen.float(), noise)
    return (x0 + noise.to(x0)).clamp(0, 1), chosen.to(x0.device)


def attack_step_gradient(model: nn.Module, discretizer: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                         through_discretizer: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(d CE / d x, logits) at x. Only the input gets a gradient (parameters may still require grad: the
    student in DAT's attack; torch.autograd.grad leaves their .grad untouched)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = model(discretizer(x) if through_discretizer else x)
        loss = F.cross_entropy(logits.float(), labels, reduction="sum")  # sum: per-sample gradients unscaled
        (grad,) = torch.autograd.grad(loss, x)
    return grad, logits.detach().float()


def perturb(model: nn.Module, discretizer: nn.Module, x0: torch.Tensor, labels: torch.Tensor,
            config: AttackConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x_T of the attack from x0 = Q(x): random start, `steps` steps, projections (no final Q, no judging).

    Returns (x_T, logits of `model` at x0 when the first gradient step was taken there, else None), so a caller
    that needs phi(Q(x)) can reuse that forward. This is all DAT's lean path computes.
    """
    x, started = x0, None
    if config.random_start > 0 and config.steps > 0:
        x, started = random_start(x0, config, seed)
    logits_at_x0 = None
    for t in range(config.steps):
        grad, logits = attack_step_gradient(model, discretizer, x, labels, config.through_discretizer)
        if t == 0 and not config.through_discretizer and (started is None or not bool(started.any())):
            logits_at_x0 = logits
        x = project(x + config.step_size * _direction(grad, config.direction), x0, config.norm,
                    config.epsilon).detach()
    return x, logits_at_x0


def random_delta(delta: torch.Tensor, norm: str, seed: int) -> torch.Tensor:
    """A random delta with each sample's `norm` (L2 or L-inf) equal to that of `delta`: a uniform L2 direction,
    or random signs at the L-inf size. Drawn on the CPU from `seed`, so a control run is reproducible."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    flat = delta.detach().flatten(1).float().cpu()                                    # (B, D)
    if norm == "l2":
        size = flat.norm(dim=1, keepdim=True)
        noise = torch.randn(flat.shape, generator=gen)
        out = noise / noise.norm(dim=1, keepdim=True).clamp_min(1e-12) * size
    else:
        size = flat.abs().amax(dim=1, keepdim=True)
        out = (torch.randint(0, 2, flat.shape, generator=gen).float() * 2 - 1) * size
    return out.view_as(delta).to(delta)


def generate_dad_batch(teacher: nn.Module, discretizer: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       config: AttackConfig = AttackConfig(), seed: int | None = None) -> DADBatch:
    """Make Q(x') for a batch and the teacher's logits on x and Q(x'); deterministic for a given seed."""
    check_images(images)
    with torch.no_grad():
        logits_clean = teacher(images).float()
        check_labels(labels, images.shape[0], logits_clean.shape[-1])
        x0, codes_x = quantize(discretizer, images)  # Q(x)
    seed = config.seed if seed is None else seed
    x, logits_q = perturb(teacher, discretizer, x0, labels, config, seed)
    with torch.no_grad():
        if config.delta == "random":  # same size per sample as the attack's delta, random direction
            x = (x0 + random_delta(x - x0, config.norm, seed + 1)).clamp(0, 1)
        if logits_q is None:
            logits_q = teacher(x0).float()
        adversarial, codes_adv = quantize(discretizer, x)  # Q(x')
        logits_adv = teacher(adversarial).float()
    return DADBatch(images, x0, adversarial, logits_clean, logits_q, logits_adv,
                    logits_adv.argmax(-1) == labels, x, codes_x, codes_adv)


def quantize(discretizer: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(Q(images) detached, code indices or None): any nn.Module serves as Q; a Discretizer also gives codes."""
    with torch.no_grad():
        if hasattr(discretizer, "quantize"):
            out, codes = discretizer.quantize(images)
            return out.detach(), codes
        return discretizer(images).detach(), None
