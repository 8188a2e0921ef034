"""Constrained value types shared by the API schemas and the job configs (ids, locations, overrides).

Depends on nothing in this repository (schemas <- dad_core <- services).
"""
from __future__ import annotations

import re
from typing import Annotated, Union

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema

# Ids become folder names in the store and Ray submission ids: a strict alphabet, no '..', no '/'.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
URI_SCHEMES = ("file", "s3", "gs", "gcs", "az", "abfs", "abfss")
# Control characters (C0 and DEL) are refused by the patterns themselves, so the OpenAPI schema and the
# validation agree on what is accepted; a location never starts with '-' (it could pass for a flag).
TEXT_CHAR = r"[^\x00-\x1f\x7f]"
LOCATION = r"[^\x00-\x1f\x7f,-][^\x00-\x1f\x7f,]*"
URI_PATTERN = r"^[^\x00-\x1f\x7f-][^\x00-\x1f\x7f]*$"
# Every integer is bounded (what a job can use, and what SQLite's 64-bit INTEGER holds), every float finite.
MAX_INT = 2**31 - 1


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
# The patterns go to the OpenAPI schema as they are; the validators enforce the same rules with messages
# that say which rule a value broke.
Uri = Annotated[str, StringConstraints(min_length=1, max_length=2048), AfterValidator(check_uri),
                WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 2048, "pattern": URI_PATTERN})]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")]
PlainText = Annotated[str, StringConstraints(max_length=1024), AfterValidator(check_plain),
                      WithJsonSchema({"type": "string", "maxLength": 1024, "pattern": rf"^{TEXT_CHAR}*$"})]
# "section.field" (attack.steps) or a top-level preset field (image_size, student).
OverrideKey = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$", max_length=128)]
# Preset overrides are typed JSON values end to end; their types are checked against the preset's fields.
OverrideValue = Union[bool, Annotated[int, Field(ge=-2**63, le=2**63 - 1)], Annotated[float, Field(allow_inf_nan=False)],
                      PlainText, None]
Overrides = dict[OverrideKey, OverrideValue]
# fsspec options are strings in every job (`--storage-option KEY=VALUE`); fsspec backends parse them.
StorageOptions = dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")], PlainText]
# The two run-time fields every job has, with their defaults: one definition for all of them.
JobStorageOptions = Annotated[StorageOptions, Field(default_factory=dict, description="fsspec options for remote "
                                                    "URLs, e.g. endpoint_url=http://127.0.0.1:9000")]
RayAddress = Annotated[str | None, Field(None, description="Ray cluster to join (default: $RAY_ADDRESS, as set by "
                                                          "`ray job submit`; otherwise a local Ray for this run)")]
PositiveInt = Annotated[int, Field(ge=1, le=MAX_INT)]
NonNegativeInt = Annotated[int, Field(ge=0, le=MAX_INT)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Cpus = Annotated[float, Field(gt=0, le=1024)]
Gpus = Annotated[float, Field(ge=0, le=64)]
