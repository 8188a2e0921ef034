"""The hook through which job configs check what only dad_core knows (presets, objectives).

`schemas` may not import `dad_core` (schemas <- dad_core <- services), yet a job config is only valid if
its preset exists, its overrides fit the preset's dataclasses and its objective exists. So the configs
call the `JobChecks` installed here, and `services.jobs` installs the dad_core-backed one when it is
imported -- which every job and the API do before they validate a config. Without an installed checker
(schemas used on their own) a config is checked for its form only.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol

# What an objective may need besides labels and the student's clean logits (dad_core.objectives).
TEACHER_INPUTS = frozenset({"teacher_clean", "teacher_adv"})
SAMPLE_SET_INPUTS = frozenset({"student_adv", "teacher_adv"})
STUDENT_ATTACK_INPUTS = frozenset({"student_dat_adv"})


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
