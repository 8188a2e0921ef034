"""DAT's own attack (Mao et al. 2022, Eq. 5): Q(x'_s), the discrete adversarial sample of the *student*.

Settings follow DAT's official training code (easyrobust examples/imageclassification/imagenet/dat/main.py:
`pgd_generator(xrec, ..., attack_type='L2', eps=0.1, attack_steps=1, attack_lr=0.1, random_start_prob=0.8,
eval_mode=False)` on the VQGAN reconstruction), kept apart from the teacher's attack so the `dat` baselines get
DAT's attack whatever the DAD attack is set to. The lean path computes only what DAT uses: Q(x), one student
forward and backward per step (input gradient only), and Q(x_T); no clean or final student logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dad_core.attack import AttackConfig, perturb

STUDENT_MODES = ("train", "eval")


@dataclass(frozen=True)
class DATConfig:
    """DAT's attack on the student; defaults are DAT's official ones."""

    # the attack fields DAT shares with DAD's attack, with its defaults (App. C's attack is DAT's official one)
    steps: int = AttackConfig.steps
    step_size: float = AttackConfig.step_size        # attack_lr
    norm: str = AttackConfig.norm                    # attack_type
    epsilon: float | None = AttackConfig.epsilon     # eps
    random_start: float = AttackConfig.random_start  # random_start_prob
    student_mode: str = "train"             # DAT's eval_mode=False: BatchNorm uses (and updates) batch statistics

    def __post_init__(self):
        if self.student_mode not in STUDENT_MODES:
            raise ValueError(f"dat.student_mode must be one of {STUDENT_MODES}, got {self.student_mode!r}")
        try:
            self.attack()  # validates the attack fields
        except ValueError as e:
            raise ValueError(str(e).replace("attack.", "dat.")) from None

    def attack(self) -> AttackConfig:
        return AttackConfig(steps=self.steps, step_size=self.step_size, norm=self.norm, epsilon=self.epsilon,
                            random_start=self.random_start)


def dat_adversarial(student: nn.Module, discretizer: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    config: DATConfig = DATConfig(), seed: int | None = None) -> torch.Tensor:
    """Q(x'_s) for a batch (detached). `seed` None draws one from torch's global RNG (the trainer seeds it)."""
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
    with torch.no_grad():
        x0 = discretizer(images).detach()  # DAT attacks the reconstruction Q(x)
    modes = {m: m.training for m in student.modules()}  # restored exactly, whatever mix the caller had
    student.train(config.student_mode == "train")
    try:
        x, _ = perturb(student, discretizer, x0, labels, config.attack(), seed)
    finally:
        for m, mode in modes.items():
            m.training = mode
    with torch.no_grad():
        return discretizer(x).detach()
