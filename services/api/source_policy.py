"""Which input locations a request may name: a request's source, class map, model or evaluation data is read
with the cluster's credentials and its images are then served, so only prefixes the operator allows are
accepted (`--allowed-sources`; default: the store, and local paths under `--source-root`).

Pure: URIs in, yes/no out. `..` segments are resolved before the prefix test, so `/data/../etc` is not under
`/data`; a prefix only matches at a `/` boundary (`s3://bucket` does not allow `s3://bucket2`).
"""
from __future__ import annotations

import posixpath
from typing import Iterable

_ALIASES = {"local": "file", "gcs": "gs", "s3a": "s3", "abfss": "abfs"}
_MODEL_SPECS = ("teacher:", "clip:")  # evaluator model names, not locations


def _location(uri: str) -> tuple[str, str] | None:
    """(protocol, normalised absolute path), or None for a relative local path (its base is the job's cwd)."""
    protocol, sep, path = uri.partition("://")
    if not sep:
        protocol, path = "file", uri
    protocol = _ALIASES.get(protocol.lower(), protocol.lower())
    if protocol == "file" and not path.startswith("/"):
        return None
    return protocol, posixpath.normpath("/" + path.lstrip("/"))


def is_allowed(uri: str, prefixes: Iterable[str]) -> bool:
    where = _location(uri)
    for prefix in prefixes:
        allowed = _location(prefix)
        if where is None or allowed is None:
            if where is None and allowed == ("file", "/"):
                return True  # a root of "/" allows any local path, relative ones too
            continue
        if where[0] == allowed[0] and (allowed[1] == "/" or where[1] == allowed[1]
                                       or where[1].startswith(allowed[1].rstrip("/") + "/")):
            return True
    return False


def request_locations(kind: str, config) -> list[tuple[tuple[str, ...], str]]:
    """(field location, URI) of every input a run config names."""
    fields = {"generate": ("source", "class_map"), "train": ("source", "class_map", "val", "student_init"),
              "eval": ("model", "data_root", "class_map", "class_names", "pretrained")}[kind]
    out = [((name,), getattr(config, name)) for name in fields if getattr(config, name, None)]
    out = [(loc, uri) for loc, uri in out if not (loc == ("model",) and uri.startswith(_MODEL_SPECS))
           and not (loc == ("class_names",) and uri == "imagenet")  # the bundled ImageNet names
           and not (loc == ("pretrained",) and "/" not in uri)      # an open_clip tag such as "openai"
           and not (loc == ("student_init",) and uri.split(":", 1)[0] in ("random", "pretrained"))]  # timm weights
    if kind == "eval":
        for i, suite in enumerate(config.suites):
            label, sep, location = suite.partition("=")
            if suite.startswith("imagefolder:"):
                location = suite[len("imagefolder:"):]
            elif location.startswith("imagefolder:"):
                location = location[len("imagefolder:"):]
            if location:
                out.append((("suites", str(i)), location))
    return out
