"""Constrained value types shared by the API schemas and the job configs (ids, locations, overrides).

Depends on nothing in this repository (schemas <- dad_core <- services).
"""
from __future__ import annotations

import re
from typing import Annotated, Union

from pydantic import AfterValidator, Field, StringConstraints

# Ids become folder names in the store and Ray submission ids: a strict alphabet, no '..', no '/'.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
URI_SCHEMES = ("file", "s3", "gs", "gcs", "az", "abfs", "abfss")


def check_id(value: str) -> str:
    if ".." in value:
        raise ValueError("must not contain '..'")
    return value


def check_uri(value: str) -> str:
    """A data location: a path or an object-store URL. Never a flag, never a control character."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    if value.startswith("-"):
        raise ValueError("must not start with '-'")
    scheme, sep, _ = value.partition("://")
    if sep and scheme.lower() not in URI_SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not allowed; use a path or one of {', '.join(URI_SCHEMES)}")
    return value


def check_plain(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


def is_valid_id(value: str) -> bool:
    return bool(re.fullmatch(ID_PATTERN, value)) and ".." not in value


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN), AfterValidator(check_id)]
Uri = Annotated[str, StringConstraints(min_length=1, max_length=2048), AfterValidator(check_uri)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")]
PlainText = Annotated[str, StringConstraints(max_length=1024), AfterValidator(check_plain)]
# "section.field" (attack.steps) or a top-level preset field (image_size, student).
OverrideKey = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$", max_length=128)]
# Preset overrides are typed JSON values end to end; their types are checked against the preset's fields.
OverrideValue = Union[bool, int, float, PlainText, None]
Overrides = dict[OverrideKey, OverrideValue]
# fsspec options are strings in every job (`--storage-option KEY=VALUE`); fsspec backends parse them.
StorageOptions = dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")], PlainText]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Cpus = Annotated[float, Field(gt=0, le=1024)]
Gpus = Annotated[float, Field(ge=0, le=64)]
