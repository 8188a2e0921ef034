"""What `--model` names, and building it as a pixel-space classifier (students and teachers alike).

Every model is evaluated through the same interface as dad_core's teachers: [0, 1] images in, logits out,
the model owning its normalisation (`PixelSpaceClassifier` for timm students). A `ModelSpec` holds only
names and paths, so it can travel to Ray actors, each of which builds its own copy.

- Student: a timm checkpoint (plain state_dict) with its architecture and class names, given by flags or
  read from a JSON next to it: the trainer's run folder holds `model.pth` + `model.json` (`student`,
  `class_names`, `image_size`); its students are evaluated as it validated them (crop_pct 1.0).
- Teacher: `teacher:<preset>` (the preset's TeacherConfig) or `clip:<open_clip model>` with --pretrained;
  an open_clip teacher is a zero-shot classifier, so it takes whatever class names a suite needs.
"""
from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from dad_core import PixelSpaceClassifier, TeacherConfig, create_student, create_teacher, get_preset
from dad_core.imagenet import imagenet1k_classnames, imagenet1k_wnids
from services.source.class_map import parse_class_map
from services.storage import (StorageError, describe_storage_error, is_local, missing_path_hint, open_filesystem,
                              storage_errors)

# Keys a checkpoint's JSON sidecar may use (the trainer's export and hand-written ones alike).
_ARCH_KEYS = ("arch", "model", "student", "model_name")
_CLASS_KEYS = ("class_names", "classes")
_SIDECAR_NAMES = ("model.json", "student.json")
_CHECKPOINT_NAMES = ("model.pth", "student.pth", "student.pt", "model.safetensors", "student.safetensors")


class ModelError(ValueError):
    """A --model that cannot be built (unknown name, unreadable checkpoint, no class names); names it."""


@dataclass(frozen=True)
class ModelSpec:
    kind: str                               # "student" | "teacher"
    label: str                              # the row name in tables
    source: str                             # what the user passed as --model
    arch: str | None = None                 # student: timm model name
    checkpoint: str | None = None           # student: checkpoint path or URL
    class_names: tuple[str, ...] | None = None  # fixed output classes (students, timm teachers)
    image_size: int | None = None           # evaluation resolution; None: the model's own
    crop_pct: float | None = None           # centre-crop fraction; None: the model's own
    teacher: TeacherConfig | None = None
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)  # for a remote checkpoint

    @property
    def zero_shot(self) -> bool:
        """A CLIP teacher scores any class names; a timm model has fixed outputs."""
        return self.kind == "teacher" and self.teacher is not None and self.teacher.kind == "open_clip"


@dataclass
class LoadedModel:
    module: nn.Module       # [0, 1] images (B, 3, S, S) -> logits (B, K)
    class_names: tuple[str, ...]
    image_size: int
    crop_pct: float


def teacher_spec(source: str, teacher: TeacherConfig, label: str | None = None,
                 image_size: int | None = None) -> ModelSpec:
    names = tuple(imagenet1k_classnames()) if teacher.kind == "timm" else None
    return ModelSpec("teacher", label or source, source, class_names=names, image_size=image_size, teacher=teacher)


def parse_model(source: str, *, arch: str | None = None, class_names: str | None = None,
                pretrained: str | None = None, templates: str | None = None,
                overrides: Mapping[str, Any] | None = None, label: str | None = None,
                image_size: int | None = None, crop_pct: float | None = None,
                storage_options: Mapping[str, Any] | None = None) -> ModelSpec:
    """Resolve `--model` (and its companion flags) into a ModelSpec; remote checkpoints are fetched once."""
    if source.startswith("teacher:"):
        try:
            teacher = get_preset(source.split(":", 1)[1], dict(overrides or {})).teacher
        except ValueError as e:
            raise ModelError(f"--model {source!r}: {e}") from e
        if pretrained is not None:
            teacher = replace(teacher, pretrained=pretrained)
        if templates is not None:
            teacher = replace(teacher, templates=templates)
        return teacher_spec(source, teacher, label, image_size)
    if source.startswith("clip:"):
        teacher = TeacherConfig(kind="open_clip", model=source.split(":", 1)[1], pretrained=pretrained,
                                templates=templates or "openai")
        return teacher_spec(source, teacher, label, image_size)
    checkpoint, sidecar = _find_checkpoint(source, storage_options)
    arch = arch or _first(sidecar, _ARCH_KEYS)
    if not arch:
        raise ModelError(f"--model {source!r}: a student checkpoint needs --arch (its timm model name), "
                         f"or a JSON next to it with one of {list(_ARCH_KEYS)}")
    names = _read_class_names(class_names, storage_options) if class_names else _first(sidecar, _CLASS_KEYS)
    if names is None:
        names = list(imagenet1k_wnids())  # the paper's students are 1,000-way ImageNet classifiers
    if sidecar.get("image_size"):  # the trainer's model.json: it trained and validated on uncropped squares
        crop_pct = crop_pct or float(sidecar.get("crop_pct", 1.0))
    image_size = image_size or sidecar.get("image_size")
    parts = source.rstrip("/").split("/")
    default_label = parts[-2] if parts[-1] in _CHECKPOINT_NAMES and len(parts) > 1 else parts[-1]  # run folder name
    return ModelSpec("student", label or default_label, source, arch=arch, checkpoint=checkpoint,
                     class_names=tuple(str(n) for n in names), image_size=image_size, crop_pct=crop_pct,
                     storage_options=dict(storage_options or {}))


def _first(d: Mapping[str, Any], keys: Sequence[str]) -> Any:
    return next((d[k] for k in keys if d.get(k)), None)


def _read_class_names(uri: str, storage_options) -> list[str]:
    """`imagenet` (the 1,000 wnids), or a file: JSON list, or one name per line."""
    if uri == "imagenet":
        return list(imagenet1k_wnids())
    fs, path = open_filesystem(uri, storage_options)
    try:
        text = fs.cat_file(path).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read class names {uri!r}: {e}") from e
    names = parse_class_map(text, uri, known_ids=())
    if isinstance(names, dict):
        raise ModelError(f"class names {uri!r} must be a list in output order, not a mapping")
    return names


def _find_checkpoint(source: str, storage_options) -> tuple[str, dict[str, Any]]:
    """(checkpoint URL, sidecar JSON) for a checkpoint file or a folder holding one.

    The checkpoint stays a URL: each worker fetches its own copy (`local_checkpoint`), so Ray actors on
    other nodes can read an s3:// checkpoint that only the driver's disk would otherwise have.
    """
    fs, path = open_filesystem(source, storage_options)
    try:
        if not fs.exists(path):
            raise ModelError(f"--model {source!r}: no such checkpoint or folder{missing_path_hint(source)}")
        if fs.isdir(path):
            found = [posixpath.join(path, n) for n in _CHECKPOINT_NAMES if fs.isfile(posixpath.join(path, n))]
            if not found:
                raise ModelError(f"--model {source!r}: folder has none of {list(_CHECKPOINT_NAMES)}")
            path, sidecars = found[0], [posixpath.join(path, n) for n in _SIDECAR_NAMES]
        else:
            stem = posixpath.splitext(path)[0]
            sidecars = [path + ".json", stem + ".json"]  # model.pth -> model.json (the trainer's export)
        sidecar = next((_read_json(fs, p, source) for p in sidecars if fs.isfile(p)), {})
    except storage_errors() as e:
        raise StorageError(f"cannot read --model {source!r}: {describe_storage_error(source, e)}") from e
    return (path if is_local(fs) else fs.unstrip_protocol(path)), sidecar


def local_checkpoint(uri: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """A local path to the checkpoint: itself on local disk, else a fresh download (once per worker)."""
    fs, path = open_filesystem(uri, storage_options)
    if is_local(fs):
        return path
    local = os.path.join(tempfile.mkdtemp(prefix="dad-eval-"), posixpath.basename(path))
    try:
        fs.get_file(path, local)
    except (OSError, PermissionError) as e:
        raise ModelError(f"cannot fetch checkpoint {uri!r}: {type(e).__name__}: {e}") from e
    return local


def _read_json(fs, path: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(fs.cat_file(path))
    except (OSError, ValueError) as e:
        raise ModelError(f"--model {source!r}: cannot read {path!r}: {e}") from e
    return data if isinstance(data, dict) else {}


def load_model(spec: ModelSpec, class_names: Sequence[str] | None = None,
               device: str | torch.device = "cpu") -> LoadedModel:
    """Build the classifier; `class_names` is the vocabulary a zero-shot teacher must score (ignored otherwise).

    Any failure (unknown name, missing or unreadable weights, a checkpoint of another shape) becomes a
    ModelError that names the model.
    """
    if spec.kind == "teacher":
        names = list(class_names or ()) if spec.zero_shot else list(spec.class_names or ())
        if not names:
            raise ModelError(f"teacher {spec.source!r} needs the class names it scores")
        try:
            teacher = create_teacher(spec.teacher, names, device=device)
        except (OSError, RuntimeError, ValueError) as e:
            raise ModelError(f"cannot build teacher {spec.source!r} ({spec.teacher.model}, "
                             f"pretrained={spec.teacher.pretrained!r}): {e}") from e
        return LoadedModel(teacher, tuple(names), spec.image_size or teacher.image_size, spec.crop_pct or 1.0)
    names = spec.class_names or ()
    path = local_checkpoint(spec.checkpoint, spec.storage_options) if spec.checkpoint else None
    try:
        model = create_student(spec.arch, num_classes=len(names), checkpoint_path=path)
    except Exception as e:  # noqa: BLE001 - torch.load on a foreign file raises anything (IndexError, EOFError...)
        if isinstance(e, ValueError) and "unknown timm model" in str(e):
            raise ModelError(f"--arch {spec.arch!r}: {e}") from e
        first_line = str(e).splitlines()[0] if str(e) else "empty or truncated file"
        raise ModelError(f"cannot load checkpoint {spec.source!r} as {spec.arch} with {len(names)} classes: "
                         f"{type(e).__name__}: {first_line}") from e
    finally:
        if path and path != spec.checkpoint:  # a downloaded copy: the weights are in memory now
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    size = spec.image_size or int(cfg.get("input_size", (3, 224, 224))[-1])
    crop = spec.crop_pct or float(cfg.get("crop_pct", 0.875))
    return LoadedModel(PixelSpaceClassifier(model).eval().to(device), tuple(names), size, crop)
