"""The README's Python code runs as written, and `make help` lists every target in aligned columns."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_readme_has_the_library_snippet():
    assert any("generate_dad_batch" in block for block in python_blocks())


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs_as_written(index):
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(python_blocks()[index], f"README.md python block {index}", "exec"), namespace)  # noqa: S102


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_help_lists_every_target_in_aligned_columns():
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    targets = re.findall(r"^([a-z-]+):.*## ", (REPO / "Makefile").read_text(), flags=re.M)
    assert [line.split()[0] for line in lines] == targets
    columns = {re.match(r"\s*\S+\s+", line).end() for line in lines}
    assert len(columns) == 1, out
