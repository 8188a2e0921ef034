"""Named configurations (`tiny`, `paper`, ...) kept as JSON data, overridable field by field.

    preset = get_preset("paper", overrides={"discretizer.checkpoint": "/ckpt/vq-f8.ckpt"})

A preset's fields are the frozen configs of each concept (TeacherConfig, DiscretizerConfig, AttackConfig,
DistillConfig, DATConfig), so a service never builds models from anything but these. Their defaults are the
paper's setting; a preset file holds only what differs from them (each value written once).
"""
from __future__ import annotations

import dataclasses
import hashlib
import functools
import json
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any, Iterable, Mapping


from dad_core.attack import AttackConfig, attack_from_dict
from dad_core.dat import DATConfig
from dad_core.discretizers.factory import DiscretizerConfig
from dad_core.losses import DistillConfig
from dad_core.students import describe_init
from dad_core.teachers.factory import TeacherConfig

_SECTIONS = {"teacher": TeacherConfig, "discretizer": DiscretizerConfig, "attack": AttackConfig,
             "distill": DistillConfig, "dat": DATConfig}
# Sections whose stored dicts may predate a field's meaning (see attack_from_dict).
_READERS = {"attack": attack_from_dict}


@dataclass(frozen=True)
class Preset:
    name: str
    image_size: int = 224
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    discretizer: DiscretizerConfig = field(default_factory=DiscretizerConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    dat: DATConfig = field(default_factory=DATConfig)  # the student's own attack of the dat objectives
    student: str = "resnet50"
    student_init: str = "random"  # dad_core.students.init_student: random, pretrained[:TAG] or a checkpoint file
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.image_size, int) or self.image_size < 8:
            raise ValueError(f"image_size must be an integer >= 8, got {self.image_size!r}")
        if not isinstance(self.student_init, str) or not self.student_init:
            raise ValueError(f"student_init must be random, pretrained, pretrained:TAG or a checkpoint path, "
                             f"got {self.student_init!r}")
        describe_init(self.student_init)  # ValueError for a malformed pretrained:TAG

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """sha256 of the resolved configuration (the description does not count)."""
        d = self.to_dict()
        d.pop("description")
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=list).encode()).hexdigest()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Preset":
        """Build from a (possibly partial) nested dict; an unknown field raises an error naming it."""
        d = dict(d)
        _check_keys("", d, {f.name for f in fields(cls)})
        kwargs = {}
        for key, value in d.items():
            if key in _SECTIONS:
                if not isinstance(value, Mapping):
                    raise ValueError(f"{key} must be a mapping of fields, got {value!r}")
                sec = _SECTIONS[key]
                _check_keys(f"{key}.", value, {f.name for f in fields(sec)})
                try:
                    kwargs[key] = _READERS.get(key, lambda v, sec=sec: sec(**v))(value)
                except TypeError as e:
                    raise ValueError(f"{key}: {e}") from e
            else:
                kwargs[key] = value
        return cls(**kwargs)


def _check_keys(prefix: str, d: Mapping[str, Any], known: set[str]) -> None:
    for key in d:
        if key not in known:
            raise ValueError(f"unknown config field {prefix}{key!r}; known fields: {sorted(known)}")


def list_presets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).iterdir() if p.name.endswith(".json"))


def _preset_dict(name: str) -> dict[str, Any]:
    if name not in list_presets():
        raise ValueError(f"unknown preset {name!r}; available: {list_presets()}")
    return json.loads(resources.files(__package__).joinpath(f"{name}.json").read_text())


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = d
    for i, part in enumerate(parents):
        node = node.setdefault(part, {})
        # a preset file leaves out sections at their defaults: only the dataclass says what is a section
        if not isinstance(node, dict) or i > 0 or part not in _SECTIONS:
            raise ValueError(f"cannot set {dotted!r}: {'.'.join(parents[:i + 1])!r} is not a section")
    node[leaf] = value


def get_preset(name: str, overrides: Mapping[str, Any] | None = None) -> Preset:
    """A preset by name, with dotted-key overrides (`{"attack.steps": 2}`) applied and validated."""
    d = _preset_dict(name)
    for key, value in (overrides or {}).items():
        _set_dotted(d, key, value)
    return Preset.from_dict({"name": name, **d})


@functools.lru_cache(maxsize=None)
def preset_field_types() -> dict[str, Any]:
    """'section.field' (and top-level 'field') -> the field's type, for every field of a Preset."""
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
def type_adapter(tp):
    """A cached pydantic TypeAdapter for a preset field type (built once: validation runs on every request)."""
    from pydantic import TypeAdapter

    return TypeAdapter(tp)


def _fits(tp, value: Any) -> bool:
    from pydantic import ValidationError

    try:
        type_adapter(tp).validate_python(value, strict=True)
        return True
    except ValidationError:
        return False


def parse_override(item: str) -> tuple[str, Any]:
    """One `--set key=value`, the one reading every path uses (CLI, job configs, experiments): the value read
    as JSON (2, 0.5, 1e-05, true, null, [1, 2], "text"), or kept as text when it is not JSON or when the field
    takes text and the JSON reading does not fit it (`teacher.pretrained=/ckpt.pt`, `student=123`)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"--set expects key=value, got {item!r}")
    try:
        value = json.loads(text)
    except ValueError:
        return key, text
    tp = preset_field_types().get(key)
    if tp is not None and not isinstance(value, str) and not _fits(tp, value) and _fits(tp, text):
        return key, text
    return key, value


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """CLI `--set key=value` items to a dict (parse_override on each)."""
    return dict(parse_override(item) for item in items)
