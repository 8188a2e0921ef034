"""Preset overrides as typed values: each checked against the type of the preset field it sets.

A job resolves its preset once (`resolve_preset`) and hands the `Preset` object to its actors and workers.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import typing
from typing import Any, Mapping

from pydantic import TypeAdapter, ValidationError


@functools.lru_cache(maxsize=None)
def _field_types() -> dict[str, Any]:
    """'section.field' (and top-level 'field') -> the field's type, for every field of a Preset."""
    from dad_core.presets import Preset

    out = {}
    for section in dataclasses.fields(Preset):
        cls = typing.get_type_hints(Preset)[section.name]
        if dataclasses.is_dataclass(cls):
            hints = typing.get_type_hints(cls)
            out.update({f"{section.name}.{f.name}": hints[f.name] for f in dataclasses.fields(cls)})
        elif section.name != "name":
            out[section.name] = cls  # top-level fields: image_size, student, description
    return out


@functools.lru_cache(maxsize=None)
def _adapter(tp) -> TypeAdapter:
    return TypeAdapter(tp)


def typed_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides with each value checked (strictly: no text read as a number) against its field's type;
    ValueError naming the key for an unknown field or a value of the wrong type."""
    types = _field_types()
    out = {}
    for key, value in overrides.items():
        if key not in types:
            section = key.split(".", 1)[0]
            known = sorted(k for k in types if k.startswith(f"{section}.")) or sorted({k.split(".")[0] for k in types})
            raise ValueError(f"{key}: unknown preset field; known: {', '.join(known)}")
        try:
            out[key] = _adapter(types[key]).validate_python(value, strict=True)
        except ValidationError:
            raise ValueError(f"{key}: expected {_type_name(types[key])}, got {value!r} "
                             f"({type(value).__name__})") from None
    return out


def parse_override_text(item: str) -> tuple[str, Any]:
    """A CLI `--set key=value`: the value read as JSON (2, 0.5, 1e-05, true, null, "text"), or kept as text
    when the field takes text and the JSON reading does not fit it (`teacher.pretrained=/ckpt.pt`)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
    try:
        value = json.loads(text)
    except ValueError:
        return key, text
    tp = _field_types().get(key)
    if tp is not None and not isinstance(value, str):
        try:
            _adapter(tp).validate_python(value, strict=True)
        except ValidationError:
            try:
                _adapter(tp).validate_python(text, strict=True)
                return key, text
            except ValidationError:
                pass
    return key, value


def resolve_preset(name: str, overrides: Mapping[str, Any] | None = None):
    """The job's `Preset`: resolved once, after type-checking the overrides."""
    from dad_core import get_preset

    return get_preset(name, typed_overrides(overrides or {}) or None)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
