"""Which code made a sample set: package version, git commit (read from .git, no subprocess), libraries."""
from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

from schemas.manifest import CodeVersion

_LIBRARIES = ("torch", "open_clip_torch", "taming-transformers-rom1504", "ray", "pyarrow", "pillow", "numpy", "fsspec")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_commit(start: Path | None = None) -> str | None:
    """HEAD's commit of the checkout holding this file, or None outside a git checkout."""
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        git = folder / ".git"
        if git.is_dir():
            try:
                head = (git / "HEAD").read_text().strip()
                if not head.startswith("ref: "):
                    return head
                ref = head[5:]
                if (git / ref).is_file():
                    return (git / ref).read_text().strip()
                packed = git / "packed-refs"
                if packed.is_file():
                    for line in packed.read_text().splitlines():
                        if line.endswith(" " + ref):
                            return line.split()[0]
            except OSError:
                return None
            return None  # a repository without commits yet
    return None


def code_version() -> CodeVersion:
    libs = {name: v for name in _LIBRARIES if (v := _version(name))}
    return CodeVersion(version=_version("dad") or "unknown", git_commit=git_commit(),
                       python=platform.python_version(), libraries=libs)
