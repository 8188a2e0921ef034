"""Perturbation diagnostics and the controls that isolate each part of DAD (dad_core.perturbation, attack)."""
import dataclasses

import pytest
import torch

from dad_core import AttackConfig, IdentityDiscretizer, generate_dad_batch
from dad_core.attack import quantize, random_delta
from dad_core.perturbation import DIAGNOSTICS, perturbation_diagnostics


def test_diagnostics_measure_distances_identical_values_codes_and_the_teachers_change():
    q = torch.full((2, 3, 4, 4), 0.5)
    adv = q.clone()
    adv[1, 0, 0, 0] = 0.5 + 3 / 255                    # item 1: one value of 48 moved by 3 grey levels
    delta = torch.zeros_like(q)
    delta[1, 0, 0, 0] = 0.2
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    logits_adv = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    codes_x = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4]])
    codes_adv = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 9]])
    d = perturbation_diagnostics(q, q, adv, delta, logits, logits_adv, torch.tensor([0, 0]), codes_x, codes_x,
                                 codes_adv)
    assert tuple(d) == DIAGNOSTICS and all(v.shape == (2,) for v in d.values())
    assert d["l2_vs_qx"][0] == 0 and d["same_vs_qx"][0] == 1 and d["kl_vs_qx"][0] == 0
    assert d["l2_vs_qx"][1] == pytest.approx(3 / 255) and d["linf_vs_qqx"][1] == pytest.approx(3 / 255)
    assert d["same_vs_qx"][1] == pytest.approx(47 / 48) and d["codes_vs_qx"][1] == 0.25
    assert d["delta_l2"][1] == pytest.approx(0.2) and d["delta_linf"][1] == pytest.approx(0.2)
    p = torch.tensor([2.0, 0.0]).softmax(0)
    assert d["conf_drop_vs_qx"][1] == pytest.approx(float(p[0] - p[1]))
    assert d["kl_vs_qx"][1] == pytest.approx(float((p * (p.log() - p.flip(0).log())).sum()), rel=1e-5)
    no_codes = perturbation_diagnostics(q, q, adv, delta, logits, logits_adv, torch.tensor([0, 0]))
    assert torch.isnan(no_codes["codes_vs_qx"]).all()


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_random_delta_has_each_samples_norm_and_another_direction(norm):
    delta = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * torch.tensor([0.1, 1, 2, 0]).view(4, 1, 1, 1)
    r = random_delta(delta, norm, seed=3)
    size = (lambda t: t.flatten(1).norm(dim=1)) if norm == "l2" else (lambda t: t.flatten(1).abs().amax(1))
    torch.testing.assert_close(size(r), size(delta))
    assert torch.equal(r, random_delta(delta, norm, seed=3)) and not torch.equal(r[:3], delta[:3])


def test_zero_steps_is_q_of_q_of_x(tiny_teacher, tiny_vq, images, labels):
    """The Q(Q(x)) control: DAD's pipeline with no delta; Q(x') is Q applied to Q(x)."""
    out = generate_dad_batch(tiny_teacher, tiny_vq, images, labels, AttackConfig(steps=0))
    q_of_q, codes = quantize(tiny_vq, out.discretized)
    assert torch.equal(out.adversarial, q_of_q) and torch.equal(out.codes_adversarial, codes)
    assert torch.equal(out.perturbed, out.discretized)
    assert not torch.equal(out.adversarial, out.discretized)  # Q is not idempotent: the second pass changes it


def test_random_delta_control_differs_from_dad_only_in_direction(tiny_teacher, tiny_vq, images, labels):
    dad = AttackConfig(step_size=0.5, epsilon=0.5)
    a = generate_dad_batch(tiny_teacher, tiny_vq, images, labels, dad, seed=5)
    r = generate_dad_batch(tiny_teacher, tiny_vq, images, labels, dataclasses.replace(dad, delta="random"), seed=5)
    assert torch.equal(a.discretized, r.discretized)
    norm_a = (a.perturbed - a.discretized).flatten(1).norm(dim=1)
    norm_r = (r.perturbed - r.discretized).flatten(1).norm(dim=1)
    assert (norm_r <= norm_a + 1e-5).all() and (norm_r >= 0.9 * norm_a).all()  # only clipping to [0, 1] shrinks it
    cos = torch.nn.functional.cosine_similarity((a.perturbed - a.discretized).flatten(1),
                                                (r.perturbed - r.discretized).flatten(1))
    assert cos.abs().max() < 0.2


def test_vq_quantize_gives_the_code_grid_and_the_same_image(tiny_vq, images):
    out, codes = tiny_vq.quantize(images)
    assert torch.equal(out, tiny_vq(images)) and codes.shape == (6, 8 * 8) and codes.dtype == torch.int64
    assert IdentityDiscretizer().quantize(images)[1] is None


def test_q_of_q_measures_only_on_the_rows_given():
    q = torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    logits = torch.zeros(4, 3)
    rows = torch.tensor([0, 2])
    d = perturbation_diagnostics(q, q[rows], q, torch.zeros_like(q), logits, logits, torch.zeros(4, dtype=torch.long),
                                 torch.zeros(4, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long),
                                 torch.zeros(4, 5, dtype=torch.long), requantized_rows=rows)
    assert d["same_vs_qqx"].tolist()[0::2] == [1.0, 1.0] and torch.isnan(d["same_vs_qqx"][1::2]).all()
    assert d["codes_vs_qqx"].tolist()[0::2] == [1.0, 1.0] and torch.isnan(d["codes_vs_qqx"][1::2]).all()
    assert not torch.isnan(d["same_vs_qx"]).any()
