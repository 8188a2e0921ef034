import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup must fail at once, never download

from dad_core import create_discretizer, create_teacher, get_preset  # noqa: E402

CLASSES = ["cat", "dog", "bird", "fish"]


@pytest.fixture(scope="session")
def tiny_preset():
    return get_preset("tiny")


@pytest.fixture(scope="session")
def tiny_teacher(tiny_preset):
    return create_teacher(tiny_preset.teacher, CLASSES)


@pytest.fixture(scope="session")
def tiny_vq(tiny_preset):
    return create_discretizer(tiny_preset.discretizer)


@pytest.fixture
def images():
    return torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def labels():
    return torch.tensor([0, 1, 2, 3, 0, 1])
