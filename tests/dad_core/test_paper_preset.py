"""The paper-size models build and run with random weights (slow: ViT-L/14 and vq-f8 on a CPU).

The `tiny` tests cover the same code paths; these prove the paper's configs are valid architectures.
"""
import dataclasses

import pytest
import torch

from dad_core import create_discretizer, create_teacher, generate_dad_batch, get_preset

pytestmark = pytest.mark.slow


def test_paper_preset_generates_a_batch_at_224_px_with_random_weights():
    p = get_preset("paper")
    teacher = create_teacher(dataclasses.replace(p.teacher, pretrained=None, templates="simple"), ["cat", "dog"])
    q = create_discretizer(p.discretizer)
    assert q.downsample_factor == 8 and teacher.image_size == 224
    out = generate_dad_batch(teacher, q, torch.rand(1, 3, 224, 224), torch.tensor([1]), p.attack)
    assert out.adversarial.shape == (1, 3, 224, 224)
