"""The dad_core-backed `JobChecks` every job and the API validate configs with (installed on import of
services.jobs). dad_core (and torch) load on the first check, not at import."""
from __future__ import annotations

from typing import Any, Mapping


class DadCoreChecks:
    def objectives(self) -> list[str]:
        from dad_core.objectives import list_objectives

        return list_objectives()

    def objective_needs(self, name: str) -> frozenset[str]:
        from dad_core.objectives import objective_needs

        return objective_needs(name)

    def presets(self) -> list[str]:
        from dad_core import list_presets

        return list_presets()

    def check_preset(self, name: str, overrides: Mapping[str, Any]) -> None:
        from services.jobs.presets import resolve_preset

        try:
            resolve_preset(name, overrides)
        except TypeError as e:  # a dataclass refusing a value
            raise ValueError(str(e)) from None
