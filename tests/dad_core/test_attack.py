import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dad_core import AttackConfig, IdentityDiscretizer, generate_dad_batch, get_preset, judge
from dad_core.attack import attack_from_dict, random_start

NO_START = dict(random_start=0.0)


def _teacher_loss(teacher, x, y):
    with torch.no_grad():
        return F.cross_entropy(teacher(x), y, reduction="none")


def test_the_attack_step_raises_the_teachers_loss_on_q_of_x(tiny_teacher, images, labels):
    q = IdentityDiscretizer()  # isolates the attack step: Q(x') is then exactly x'
    out = generate_dad_batch(tiny_teacher, q, images, labels, AttackConfig(step_size=0.5, **NO_START))
    before = _teacher_loss(tiny_teacher, out.discretized, labels)
    after = _teacher_loss(tiny_teacher, out.adversarial, labels)
    assert (after > before).all()


def test_more_steps_raise_the_loss_further(tiny_teacher, images, labels):
    q = IdentityDiscretizer()
    one = generate_dad_batch(tiny_teacher, q, images, labels, AttackConfig(step_size=0.3, steps=1, epsilon=None,
                                                                           **NO_START))
    three = generate_dad_batch(tiny_teacher, q, images, labels, AttackConfig(step_size=0.3, steps=3, epsilon=None,
                                                                             **NO_START))
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


def test_paper_attack_is_app_c_l2_attack():
    # App. C = DAT's official attack: one L2-normalised step of 0.1, L2 ball 0.1, random start with p 0.8.
    for name in ("paper", "tiny"):
        a = get_preset(name).attack
        assert (a.norm, a.steps, a.step_size, a.epsilon, a.random_start, a.direction) == ("l2", 1, 0.1, 0.1, 0.8, "l2")
    assert AttackConfig().norm == "l2" and AttackConfig().random_start == 0.8


def test_the_l2_step_has_l2_norm_step_size_per_sample(tiny_teacher, labels):
    images = 0.25 + 0.5 * torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))  # no clipping
    cfg = AttackConfig(norm="l2", step_size=0.1, epsilon=None, **NO_START)
    out = generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, labels, cfg)
    norms = (out.adversarial - images).flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.full_like(norms, 0.1))
    assert (out.adversarial - images).abs().max() < 0.05  # not a sign step (which moves every pixel by 0.1)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_projection_keeps_every_sample_in_the_norm_ball(tiny_teacher, images, labels, norm):
    cfg = AttackConfig(norm=norm, steps=4, step_size=0.5, epsilon=0.08, random_start=1.0)
    out = generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, labels, cfg, seed=3)
    delta = (out.adversarial - out.discretized).flatten(1)
    size = delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)
    assert (size <= 0.08 + 1e-5).all() and (size > 0.08 * 0.9).all()  # on (or just inside, clipped) the sphere
    assert 0 <= out.adversarial.min() and out.adversarial.max() <= 1


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_random_start_happens_in_the_given_fraction_of_samples(norm):
    x0 = torch.full((2000, 3, 4, 4), 0.5)
    cfg = AttackConfig(norm=norm, epsilon=0.1, random_start=0.8)
    start, chosen = random_start(x0, cfg, seed=11)
    moved = (start != x0).flatten(1).any(dim=1)
    assert torch.equal(moved, chosen)
    assert 0.77 < chosen.float().mean().item() < 0.83
    size = (start - x0).flatten(1)
    size = size.norm(dim=1) if norm == "l2" else size.abs().amax(dim=1)
    assert (size[chosen] <= 0.1 + 1e-6).all()
    if norm == "l2":  # a random direction on the sphere of radius eps
        torch.testing.assert_close(size[chosen], torch.full_like(size[chosen], 0.1))
    again, chosen_again = random_start(x0, cfg, seed=11)
    assert torch.equal(again, start) and torch.equal(chosen_again, chosen)
    assert not random_start(x0, dataclasses.replace(cfg, random_start=0.0), seed=11)[1].any()


def test_old_boolean_random_start_and_pre_norm_configs_still_read():
    assert AttackConfig(random_start=True).random_start == 1.0
    assert AttackConfig(random_start=False).random_start == 0.0
    # what a sample set's manifest recorded before attack.norm existed: a sign step, L-inf box, no start
    old = {"steps": 1, "step_size": 0.1, "grad": "sign", "epsilon": None, "random_start": False,
           "through_discretizer": False, "seed": 0}
    a = attack_from_dict(old)
    assert (a.norm, a.direction, a.epsilon, a.random_start) == ("linf", "sign", None, 0.0)


def test_the_linf_step_moves_every_pixel_by_step_size_before_discretization(tiny_teacher, images, labels):
    # With Q = identity and the sign direction, every pixel moves by exactly lr (unless clipped at 0 or 1).
    cfg = AttackConfig(norm="linf", step_size=0.1, epsilon=None, **NO_START)
    out = generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, labels, cfg)
    delta = (out.adversarial - images).abs()
    inside = (out.adversarial > 0) & (out.adversarial < 1)
    torch.testing.assert_close(delta[inside], torch.full_like(delta[inside], 0.1))


def test_epsilon_bounds_the_perturbation(tiny_teacher, images, labels):
    cfg = AttackConfig(norm="linf", steps=4, step_size=0.05, epsilon=0.08, **NO_START)
    out = generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, labels, cfg)
    assert (out.adversarial - out.discretized).abs().max() <= 0.08 + 1e-6


@pytest.mark.parametrize("grad", ["raw", "l2"])
def test_other_gradient_directions_also_ascend(tiny_teacher, images, labels, grad):
    step = {"raw": 1.0, "l2": 0.05}[grad]
    cfg = AttackConfig(grad=grad, step_size=step, epsilon=None, **NO_START)
    out = generate_dad_batch(tiny_teacher, IdentityDiscretizer(), images, labels, cfg)
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
    ("epsilon", None, "needs attack.epsilon"), ("step_size", float("nan"), "attack.step_size"),
    ("norm", "l1", "attack.norm"), ("random_start", 1.5, "attack.random_start"), ("delta", "noise", "attack.delta"),
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
