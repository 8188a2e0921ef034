"""Job configs in schemas/: the form checks they make on their own, and the dad_core rules they take from the
installed checks (services.jobs installs them)."""
import pytest
from pydantic import ValidationError

from schemas.jobs import GenerateJobConfig, TrainJobConfig
from schemas.jobs import checks as job_checks


class _Checks:
    def objectives(self):
        return ["ce", "dad"]

    def objective_needs(self, name):
        if name not in ("ce", "dad"):
            raise ValueError(f"unknown objective {name!r}")
        return frozenset() if name == "ce" else frozenset({"teacher_clean", "student_adv", "teacher_adv"})

    def presets(self):
        return ["tiny"]

    def check_preset(self, name, overrides):
        if "attack.nope" in overrides:
            raise ValueError("attack.nope: unknown preset field")


@pytest.fixture
def checks(monkeypatch):
    monkeypatch.setattr(job_checks, "_installed", _Checks())


def test_rules_come_from_the_installed_checks(checks):
    assert TrainJobConfig(source="/d", out="/o", objective="ce", preset="tiny").samples is None
    for kwargs, field in (({"objective": "dad"}, "samples"), ({"objective": "kd"}, "objective"),
                          ({"objective": "ce", "preset": "paper"}, "preset"),
                          ({"objective": "ce", "overrides": {"attack.nope": 1}}, "overrides"),
                          ({"objective": "dad", "samples": "/s", "hflip": True}, "hflip")):
        with pytest.raises(ValidationError) as e:
            TrainJobConfig(source="/d", out="/o", **{"preset": "tiny", **kwargs})
        assert [err["loc"] for err in e.value.errors()] == [(field,)], kwargs


def test_form_is_checked_without_dad_core(monkeypatch):
    monkeypatch.setattr(job_checks, "_installed", None)
    assert GenerateJobConfig(source="/d", preset="anything").preset == "anything"  # no registry to ask
    for bad in ({"source": "-x"}, {"source": "/d", "shard_size": 0}, {"source": "/d", "overrides": {"A.b": 1}},
                {"source": "/d", "storage_options": {"anon": True}}, {"source": "/d", "extra": 1}):
        with pytest.raises(ValidationError):
            GenerateJobConfig(**bad)


def test_schemas_never_import_dad_core_or_services():
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "schemas"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] in ("dad_core", "services", "torch")], path
