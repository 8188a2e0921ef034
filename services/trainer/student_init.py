"""The student's starting point (`student_init`): random, timm's pretrained weights, or a checkpoint file.

dad_core.students.init_student builds it from a local file; here a file given as a store URL (s3://...) is
fetched first (each worker its own copy), and the record of where the weights came from (kind, file and its
sha256, or the timm weights' name and hub id; whether the classifier was kept) is what the run's metrics
start event, checkpoints and model.json keep as the student's lineage.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from typing import Any, Mapping

from torch import nn

from dad_core.students import describe_init, init_student
from services.storage import StorageError, describe_storage_error, is_local, open_filesystem, storage_errors


def resolved_init(student_init: str | None, preset_init: str) -> str:
    """The run's value: the config's, else the preset's (paper: pretrained, tiny: random)."""
    return student_init or preset_init


def is_file(init: str) -> bool:
    return describe_init(init) == "file"


def build_student(name: str, num_classes: int, init: str,
                  storage_options: Mapping[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(model, lineage record); raises ValueError / FileNotFoundError naming `student_init`."""
    if not is_file(init):
        return init_student(name, num_classes, init)
    fs, path = open_filesystem(init, storage_options)
    local, tmp = path, None
    try:
        if not fs.isfile(path):
            raise FileNotFoundError(f"student_init checkpoint not found: {init!r}")
        if not is_local(fs):
            tmp = tempfile.mkdtemp(prefix="dad-student-init-")
            local = os.path.join(tmp, posixpath.basename(path))
            fs.get_file(path, local)
        model, record = init_student(name, num_classes, local)
    except storage_errors() as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise StorageError(f"cannot read student_init {init!r}: {describe_storage_error(init, e)}") from e
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return model, {**record, "path": init}
