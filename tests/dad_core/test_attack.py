import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dad_core import AttackConfig, IdentityDiscretizer, generate_dad_batch, judge


def _teacher_loss(teacher, x, y):
    with torch.no_grad():
        return F.cross_entropy(teacher(x), y, reduction="none")


def test_the_attack_step_raises_the_teachers_loss_on_q_of_x(tiny_teacher, images, labels):
    q = IdentityDiscretizer()  # isolates the attack step: Q(x') is then exactly x'
    out = generate_dad_batch(tiny_teacher, q, images, labels, AttackConfig(step_size=0.01))
    before = _teacher_loss(tiny_teacher, out.discretized, labels)
    after = _teacher_loss(tiny_teacher, out.adversarial, labels)
    assert (after > before).all()


def test_more_steps_raise_the_loss_further(tiny_teacher, images, labels):
    q = IdentityDiscretizer()
    one = generate_dad_batch(tiny_teacher, q, images, labels, AttackConfig(step_size=0.01, steps=1))
    three = generate_dad_batch(tiny_teacher, q, images, labels, AttackConfig(step_size=0.01, steps=3))
    assert _teacher_loss(tiny_teacher, three.adversarial, labels).mean() > \
        _teacher_loss(tiny_teacher, one.adversarial, labels).mean()


def test_outputs_are_discretized_images_and_acceptance_is_the_teachers_verdict(tiny_teacher, tiny_vq, images, labels):
    out = generate_dad_batch(tiny_teacher, tiny_vq, images, labels)
    with torch.no_grad():
        torch.testing.assert_close(out.discretized, tiny_vq(images))
        torch.testing.assert_close(out.teacher_logits_clean, tiny_teacher(images))
        torch.testing.assert_close(out.teacher_logits_adversarial, tiny_teacher(out.adversarial))
    assert out.adversarial.shape == images.shape and 0 <= out.adversarial.min() and out.adversarial.max() <= 1
    assert torch.equal(out.accepted, out.teacher_logits_adversarial.argmax(-1) == labels)
    assert torch.equal(judge(tiny_teacher, out.adversarial, labels).correct, out.accepted)


def test_the_perturbation_is_one_step_of_step_size_before_discretization(tiny_teacher, images, labels):
    # With Q = identity and the sign direction, every pixel moves by exactly lr (unless clipped at 0 or 1).
    out = generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, labels, AttackConfig(step_size=0.1))
    delta = (out.adversarial - images).abs()
    inside = (out.adversarial > 0) & (out.adversarial < 1)
    torch.testing.assert_close(delta[inside], torch.full_like(delta[inside], 0.1))


def test_epsilon_bounds_the_perturbation(tiny_teacher, images, labels):
    cfg = AttackConfig(steps=4, step_size=0.05, epsilon=0.08)
    out = generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, labels, cfg)
    assert (out.adversarial - out.discretized).abs().max() <= 0.08 + 1e-6


@pytest.mark.parametrize("grad", ["raw", "l2"])
def test_other_gradient_directions_also_ascend(tiny_teacher, images, labels, grad):
    step = {"raw": 1.0, "l2": 0.05}[grad]
    out = generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, labels, AttackConfig(grad=grad, step_size=step))
    assert _teacher_loss(tiny_teacher, out.adversarial, labels).mean() > _teacher_loss(tiny_teacher, images, labels).mean()


def test_generation_is_deterministic_for_a_seed(tiny_teacher, tiny_vq, images, labels):
    cfg = AttackConfig(epsilon=0.1, random_start=True)
    a = generate_dad_batch(tiny_teacher, tiny_vq, images, labels, cfg, seed=7)
    b = generate_dad_batch(tiny_teacher, tiny_vq, images, labels, cfg, seed=7)
    c = generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, labels, cfg, seed=8)
    d = generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, labels, cfg, seed=7)
    assert torch.equal(a.adversarial, b.adversarial)
    assert not torch.equal(c.adversarial, d.adversarial)


def test_gradient_through_the_discretizer(tiny_teacher, tiny_vq, images, labels):
    cfg = AttackConfig(through_discretizer=True, step_size=0.05)
    out = generate_dad_batch(tiny_teacher, tiny_vq, images, labels, cfg)
    assert not torch.equal(out.adversarial, out.discretized)
    with torch.no_grad():
        torch.testing.assert_close(out.teacher_logits_discretized, tiny_teacher(out.discretized))


def test_zero_steps_is_plain_discretization(tiny_teacher, images, labels):
    out = generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, labels, AttackConfig(steps=0))
    assert torch.equal(out.adversarial, images)


@pytest.mark.parametrize("field, value, match", [
    ("steps", -1, "attack.steps"), ("grad", "adam", "attack.grad"), ("epsilon", 0.0, "attack.epsilon"),
    ("random_start", True, "needs attack.epsilon"), ("step_size", float("nan"), "attack.step_size"),
])
def test_bad_attack_config_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(AttackConfig(), **{field: value})


def test_bad_labels_are_rejected(tiny_teacher, images):
    with pytest.raises(ValueError, match="labels must lie in"):
        generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, torch.full((6,), 9))
    with pytest.raises(ValueError, match="shape"):
        generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="int64"):
        generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, torch.zeros(6))
