"""Job command lines generated from the job's config model (schemas.jobs), so flags, `--help` and the API
accept the same fields with the same types, bounds and defaults.

    parser = job_parser(TrainJobConfig, prog=..., groups={"data": ["source", ...], ...})
    config = job_config_from_args(TrainJobConfig, parser.parse_args(argv))

Every field becomes `--field-name` (dict fields: repeatable `--flag KEY=VALUE`); `--config FILE` reads a whole
config -- the job's JSON, or the control plane's run record (`runs/<id>/run.json`, its `job` part) -- and
flags given next to it override its fields. Preset overrides (`--set key=value`) become typed values once,
here; storage options stay strings in every job.
"""
from __future__ import annotations

import argparse
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from dad_core.presets import parse_override

CONFIG_HELP = ("the job's whole config as JSON: a file written by a previous run, or the control plane's run record "
               "(runs/<id>/run.json); flags given as well override its fields (any fsspec URL)")


@dataclass(frozen=True)
class Flag:
    """How one field appears on the command line, where the default (`--field-name`) does not fit."""

    name: str | None = None          # e.g. "--set" for overrides, "--no-progress" for a default-True bool
    metavar: str | None = None
    help: str | None = None          # replaces the field's description
    choices: tuple | None = None     # e.g. the registry's names for a str field
    negative: bool | None = None     # a bool flag that sets False (default: its name starts with --no-)


KEY_VALUE_FLAGS = {"overrides": Flag("--set", "KEY=VALUE"), "storage_options": Flag("--storage-option", "KEY=VALUE")}


def flag_name(field: str, flags: Mapping[str, Flag]) -> str:
    flag = flags.get(field) or KEY_VALUE_FLAGS.get(field)
    return flag.name if flag and flag.name else "--" + field.replace("_", "-")


def _unwrap(annotation) -> tuple[Any, bool]:
    """(the type inside Optional/Annotated, whether None is allowed)."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            if len(args) != 1:
                return annotation, optional
            annotation = args[0]
        else:
            return annotation, optional


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _default_text(info: FieldInfo) -> str:
    if info.is_required() or info.default in (None, False, "", (), []) or info.default_factory is not None:
        return ""
    return f" (default: {info.default})"


def _add(group, field: str, info: FieldInfo, flags: Mapping[str, Flag]) -> None:
    tp, _ = _unwrap(info.annotation)
    flag = flags.get(field) or KEY_VALUE_FLAGS.get(field) or Flag()
    name = flag_name(field, flags)
    text = (flag.help or info.description or "").replace("%", "%%")
    kw: dict[str, Any] = {"dest": field, "default": argparse.SUPPRESS}
    origin = typing.get_origin(tp)
    if tp is bool:
        negative = flag.negative if flag.negative is not None else name.startswith("--no-")
        group.add_argument(name, action="store_const", const=not negative, help=text, **kw)
        return
    if origin is dict:
        group.add_argument(name, action="append", type=key_value, metavar=flag.metavar or "KEY=VALUE",
                           help=text + " (repeatable)", **kw)
        return
    if origin is list:
        item, _ = _unwrap(typing.get_args(tp)[0])
        group.add_argument(name, nargs="+", action="extend", type=_csv(item), metavar=flag.metavar,
                           help=text + " (space- or comma-separated)", **kw)
        return
    if flag.choices:
        kw["choices"] = flag.choices
    elif origin is Literal:
        kw["choices"] = typing.get_args(tp)
    elif tp in (int, float):
        kw["type"] = tp
    group.add_argument(name, metavar=flag.metavar, help=(text + _default_text(info)) or None, **kw)


def _csv(item_type):
    def parse(text: str) -> list:
        try:
            return [item_type(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {item_type.__name__} values, got {text!r}") from None
    return parse


def _kinds_text() -> str:
    """The registered teacher and discretizer kinds (dad_core's registries), for --help."""
    from dad_core.discretizers.factory import list_discretizers
    from dad_core.teachers.factory import list_teachers

    return (f"registered kinds (--set teacher.kind=NAME, --set discretizer.kind=NAME):\n"
            f"  teacher      {', '.join(list_teachers())}\n  discretizer  {', '.join(list_discretizers())}")


def job_parser(model: type[BaseModel], *, prog: str, description: str, groups: Mapping[str, Sequence[str]],
               flags: Mapping[str, Flag] | None = None, epilog: str | None = None) -> argparse.ArgumentParser:
    """A parser with one flag per field of `model`, in the given groups; every field must be in one group."""
    flags = dict(flags or {})
    listed = [f for names in groups.values() for f in names]
    missing, unknown = set(model.model_fields) - set(listed), set(listed) - set(model.model_fields)
    if missing or unknown or len(listed) != len(set(listed)):
        raise AssertionError(f"{prog}: flags out of step with {model.__name__}: missing {sorted(missing)}, "
                             f"unknown {sorted(unknown)}")
    if "overrides" in model.model_fields:
        epilog = (epilog.rstrip() + "\n\n" if epilog else "") + _kinds_text()
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="JSON_URI", help=CONFIG_HELP)
    for title, names in groups.items():
        group = parser.add_argument_group(title)
        for name in names:
            _add(group, name, model.model_fields[name], flags)
    return parser


def given_fields(model: type[BaseModel], args: argparse.Namespace) -> dict[str, Any]:
    """The fields given as flags, as typed values (dict flags to dicts, `--set` values read once)."""
    out = {}
    for name in model.model_fields:
        if not hasattr(args, name):
            continue
        value = getattr(args, name)
        if name == "overrides":
            value = dict(parse_override(f"{k}={v}") for k, v in value)
        elif isinstance(value, list) and value and isinstance(value[0], tuple):
            value = dict(value)
        elif isinstance(value, list) and value and isinstance(value[0], list):  # list flags: comma-split words
            value = [item for word in value for item in word]
        out[name] = value
    return out


def read_config_file(uri: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A job config from JSON: the config itself, or a run record's `job` part."""
    from services.storage import StorageError, describe_storage_error, open_filesystem, storage_errors

    try:
        fs, path = open_filesystem(uri, storage_options)
        data = json.loads(fs.cat_file(path))
    except FileNotFoundError:
        raise ValueError(f"--config: {uri} does not exist") from None
    except StorageError as e:
        raise ValueError(f"--config: {e}") from None
    except ValueError as e:
        raise ValueError(f"--config: {uri} is not JSON: {e}") from None
    except storage_errors() as e:
        raise ValueError(f"--config: cannot read {uri}: {describe_storage_error(uri, e)}") from None
    if isinstance(data, dict) and data.get("format") == "dad-run":
        data = data.get("job")
        if not isinstance(data, dict):
            raise ValueError(f"--config: the run record {uri} holds no job config (written by an older control plane)")
    if not isinstance(data, dict):
        raise ValueError(f"--config: {uri} must hold a JSON object")
    return data


def job_config_from_args(model: type[BaseModel], args: argparse.Namespace, flags: Mapping[str, Flag] | None = None):
    """The job's config: `--config`'s fields, then the flags given; ValueError naming the flags at fault."""
    given = given_fields(model, args)
    data: dict[str, Any] = {}
    if getattr(args, "config", None):
        data = read_config_file(args.config, given.get("storage_options"))
    for key, value in given.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) and isinstance(data.get(key), dict) \
            else value
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ValueError(describe_errors(e, model, flags or {})) from None


def describe_errors(error: ValidationError, model: type[BaseModel], flags: Mapping[str, Flag]) -> str:
    """One line per problem, named by the flag that sets the field (field names in messages become flags)."""
    def as_flag(match: re.Match) -> str:
        return flag_name(match.group(0), flags) if match.group(0) in model.model_fields else match.group(0)

    lines = []
    for err in error.errors():
        loc = [str(p) for p in err["loc"]]
        where = flag_name(loc[0], flags) + "".join(f"[{p}]" for p in loc[1:]) if loc else "config"
        message = re.sub(r"\b[a-z]+(_[a-z]+)+\b", as_flag, err["msg"].removeprefix("Value error, "))
        lines.append(f"{where}: {message}")
    return "; ".join(lines)
