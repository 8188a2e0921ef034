"""DAT's own attack: DAT's official settings and a lean path (one student forward + backward per step)."""
import pytest
import torch
from torch import nn

from dad_core import IdentityDiscretizer, PixelSpaceClassifier, create_student, get_preset
from dad_core.dat import DATConfig, dat_adversarial


class CountingStudent(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inner = PixelSpaceClassifier(create_student("test_resnet", num_classes=4))
        self.forwards = 0

    def forward(self, x):
        self.forwards += 1
        return self.inner(x)


def test_defaults_are_dats_official_attack():
    c = DATConfig()
    assert (c.steps, c.step_size, c.norm, c.epsilon, c.random_start, c.student_mode) == (1, 0.1, "l2", 0.1, 0.8, "train")
    assert get_preset("paper").dat == c


def test_lean_path_runs_the_student_once_per_step_and_stays_in_the_ball(images, labels, tiny_vq):
    student = CountingStudent()
    out = dat_adversarial(student, IdentityDiscretizer(), images, labels, DATConfig(), seed=0)
    assert student.forwards == 1  # no clean or final logits are computed only to be thrown away
    assert ((out - images).flatten(1).norm(dim=1) <= 0.1 + 1e-5).all() and not torch.equal(out, images)
    assert not out.requires_grad and all(p.grad is None for p in student.parameters())
    student.forwards = 0
    q_out = dat_adversarial(student, tiny_vq, images, labels, DATConfig(steps=2), seed=0)
    assert student.forwards == 2 and q_out.shape == images.shape  # Q(x'_s): reconstructed by the discretizer


@pytest.mark.parametrize("mode, stats_move", [("train", True), ("eval", False)])
def test_student_mode_during_the_attack_and_restored_after(images, labels, mode, stats_move):
    student = CountingStudent()
    student.eval()  # whatever the caller had is restored
    bn = next(m for m in student.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    dat_adversarial(student, IdentityDiscretizer(), images, labels, DATConfig(student_mode=mode), seed=0)
    assert (not torch.equal(bn.running_mean, before)) is stats_move  # DAT: eval_mode=False, batch statistics
    assert not any(m.training for m in student.modules())


def test_bad_dat_config_names_the_field():
    with pytest.raises(ValueError, match="dat.student_mode"):
        DATConfig(student_mode="frozen")
    with pytest.raises(ValueError, match="dat.norm"):
        DATConfig(norm="l1")
