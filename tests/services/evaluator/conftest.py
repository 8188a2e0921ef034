"""Evaluator fixtures: tiny student checkpoints (timm `test_resnet`, random weights) and ImageFolders."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dad_core import create_student
from dad_core.imagenet import imagenet1k_classnames


@pytest.fixture(scope="session")
def imagenet_student(tmp_path_factory) -> Path:
    """A 1,000-way test_resnet exported as the trainer does: <run>/model.pth + model.json."""
    run = tmp_path_factory.mktemp("imagenet-run")
    torch.manual_seed(0)
    torch.save(create_student("test_resnet", num_classes=1000).state_dict(), run / "model.pth")
    (run / "model.json").write_text(json.dumps({"student": "test_resnet", "num_classes": 1000,
                                                "class_names": list(imagenet1k_classnames()), "image_size": 32}))
    return run


@pytest.fixture(scope="session")
def three_class_checkpoint(tmp_path_factory) -> Path:
    """A bare 3-way test_resnet state_dict (no JSON next to it: --arch and --class-names are needed)."""
    path = tmp_path_factory.mktemp("bare") / "student.pth"
    torch.manual_seed(1)
    torch.save(create_student("test_resnet", num_classes=3).state_dict(), path)
    return path
