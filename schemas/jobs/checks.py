"""The hook through which job configs check what only dad_core knows (presets, objectives).

`schemas` may not import `dad_core` (schemas <- dad_core <- services), yet a job config is only valid if
its preset exists, its overrides fit the preset's dataclasses and its objective exists. So the configs
call the `JobChecks` installed here, and `services.jobs` installs the dad_core-backed one when it is
imported -- which every job and the API do before they validate a config. Without an installed checker
(schemas used on their own) a config is checked for its form only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

# What an objective may need besides labels and the student's clean logits (dad_core.objectives).
TEACHER_INPUTS = frozenset({"teacher_clean", "teacher_adv"})
SAMPLE_SET_INPUTS = frozenset({"student_adv", "teacher_adv"})
STUDENT_ATTACK_INPUTS = frozenset({"student_dat_adv"})


@dataclass(frozen=True)
class ObjectiveNeeds:
    """What an objective needs, asked one way everywhere: the config validators (schemas.jobs.train), the
    trainer's config and its step. Built from the objective's inputs (dad_core.objectives)."""

    inputs: frozenset[str]

    @property
    def teacher(self) -> bool:
        """It distils teacher logits (stored or online)."""
        return bool(self.inputs & TEACHER_INPUTS)

    @property
    def adversarial(self) -> bool:
        """It trains on the teacher's adversarial samples Q(x') from a sample set."""
        return bool(self.inputs & SAMPLE_SET_INPUTS)

    @property
    def teacher_on_adversarial(self) -> bool:
        """It needs the teacher's logits on Q(x') (stored, or from an online teacher)."""
        return "teacher_adv" in self.inputs

    @property
    def student_attack(self) -> bool:
        """It needs the student's own discrete adversarial sample, made online (DAT): hard labels only."""
        return bool(self.inputs & STUDENT_ATTACK_INPUTS)

    def sample_set(self, teacher_logits: str | None) -> str | None:
        """Why it needs a sample set with these teacher logits (None: it does not)."""
        if self.adversarial:
            return "its adversarial samples Q(x')"
        if self.teacher and teacher_logits == "stored":
            return "the teacher's stored logits (or set teacher_logits to online)"
        return None

    def teacher_model(self, teacher_logits: str | None) -> bool:
        """A teacher must be in memory: only for online logits (stored mode never builds one)."""
        return self.teacher and teacher_logits == "online"


class JobChecks(Protocol):
    def objectives(self) -> list[str]:
        """Names of the registered training objectives."""

    def objective_needs(self, name: str) -> frozenset[str]:
        """Inputs objective `name` needs; ValueError naming the valid objectives if it is unknown."""

    def presets(self) -> list[str]:
        """Names of the bundled presets."""

    def check_preset(self, name: str, overrides: Mapping[str, Any]) -> None:
        """ValueError (message naming the override key) unless the preset resolves with these overrides."""


_installed: JobChecks | None = None


def install_checks(checks: JobChecks) -> None:
    global _installed
    _installed = checks


def installed_checks() -> JobChecks | None:
    return _installed


def objective_needs(objective: str | None) -> ObjectiveNeeds | None:
    """What the objective needs, or None when unknown here (no checks installed, or objective invalid)."""
    if _installed is None or objective is None:
        return None
    try:
        return ObjectiveNeeds(_installed.objective_needs(objective))
    except ValueError:
        return None
