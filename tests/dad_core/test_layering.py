"""dad_core is a pure library: it never imports Ray, the web stack or the services."""
import ast
import pathlib
import subprocess
import sys

import dad_core

FORBIDDEN = ("ray", "fastapi", "uvicorn", "services", "starlette", "sqlalchemy")
ROOT = pathlib.Path(dad_core.__file__).parent


def test_no_dad_core_module_imports_ray_the_web_stack_or_services():
    offenders = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders


def test_importing_dad_core_runs_nothing_heavy():
    code = ("import sys, dad_core, dad_core.presets, dad_core.teachers, dad_core.discretizers;"
            f"print([m for m in {FORBIDDEN!r} + ('taming', 'open_clip') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
