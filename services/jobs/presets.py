"""Preset overrides as typed values: each checked against the type of the preset field it sets.

A job resolves its preset once (`resolve_preset`) and hands the `Preset` object to its actors and workers.
"""
from __future__ import annotations

from typing import Any, Mapping

from pydantic import ValidationError

from dad_core.presets import preset_field_types, type_adapter


def typed_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides with each value checked (strictly: no text read as a number) against its field's type;
    ValueError naming the key for an unknown field or a value of the wrong type."""
    types = preset_field_types()
    out = {}
    for key, value in overrides.items():
        if key not in types:
            section = key.split(".", 1)[0]
            known = sorted(k for k in types if k.startswith(f"{section}.")) or sorted({k.split(".")[0] for k in types})
            raise ValueError(f"{key}: unknown preset field; known: {', '.join(known)}")
        try:
            out[key] = type_adapter(types[key]).validate_python(value, strict=True)
        except ValidationError:
            raise ValueError(f"{key}: expected {_type_name(types[key])}, got {value!r} "
                             f"({type(value).__name__})") from None
    return out


def resolve_preset(name: str, overrides: Mapping[str, Any] | None = None):
    """The job's `Preset`: resolved once, after type-checking the overrides."""
    from dad_core import get_preset

    return get_preset(name, typed_overrides(overrides or {}) or None)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
