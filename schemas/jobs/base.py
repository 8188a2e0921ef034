"""What every job config shares: strict (unknown fields refused), frozen, and checked against dad_core's
presets and objectives through the installed `JobChecks` (see checks.py)."""
from __future__ import annotations

from typing import Annotated, Any, Mapping

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from schemas.fields import Name, Overrides
from schemas.jobs.checks import installed_checks


class JobModel(BaseModel):
    """Unknown fields refused, and no coercion (`false` is not 0, `"5"` is not 5): a config means what it says."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def registry_examples(kind: str):
    """OpenAPI lists the installed registry's names (presets, objectives) when the schema is built."""
    def extra(schema: dict[str, Any]) -> None:
        checks = installed_checks()
        if checks is not None:
            schema["examples"] = list(getattr(checks, kind)())
    return extra


def _known_preset(name: str) -> str:
    checks = installed_checks()
    if checks is not None and name not in checks.presets():
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(checks.presets())}")
    return name


PresetName = Annotated[Name, AfterValidator(_known_preset)]


def preset_field(default: str):
    return Field(default, description="dad_core preset (tiny: test models on CPU; paper: CLIP ViT-L/14 + VQGAN f8 "
                                      "at 224 px): teacher, discretizer, attack and distillation settings",
                 json_schema_extra=registry_examples("presets"))


def overrides_field():
    return Field(default_factory=dict, description='preset overrides as typed values, e.g. {"attack.steps": 2} '
                                                   "(CLI: --set attack.steps=2); each is checked against the type "
                                                   "of the preset field it sets")


def _fit_preset(overrides: Mapping[str, Any], info: ValidationInfo):
    """The preset (a field declared before the overrides, so validated first) must resolve with them."""
    checks = installed_checks()
    preset = info.data.get("preset")
    if checks is not None and preset is not None:
        checks.check_preset(preset, dict(overrides))
    return overrides


PresetOverrides = Annotated[Overrides, AfterValidator(_fit_preset)]
