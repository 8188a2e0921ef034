"""Tests for dad_core.losses: each test names the behaviour it proves.

Reference values are computed here with explicit softmax/log math, independently of the implementation.
"""
from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from dad_core.losses import (
    DistillConfig,
    ard_loss,
    cross_entropy,
    dad_loss,
    dat_dad_loss,
    dat_loss,
    dist_loss,
    kd_loss,
    kl_divergence_t,
    rslad_loss,
)
from dad_core.objectives import OBJECTIVES, ObjectiveInputs, compute_objective, list_objectives, objective_needs

CFG = DistillConfig()


def _softmax(row: list[float], T: float) -> list[float]:
    e = [math.exp(v / T) for v in row]
    return [v / sum(e) for v in e]


def _kl_hand(s: list[list[float]], t: list[list[float]], T: float) -> float:
    """T^2 * mean_i sum_k p_t log(p_t / p_s), written out in plain Python."""
    total = 0.0
    for s_row, t_row in zip(s, t):
        ps, pt = _softmax(s_row, T), _softmax(t_row, T)
        total += sum(q * math.log(q / p) for p, q in zip(ps, pt))
    return T * T * total / len(s)


def _ce_hand(s: list[list[float]], y: list[int]) -> float:
    return sum(-math.log(_softmax(row, 1.0)[k]) for row, k in zip(s, y)) / len(s)


S = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
T_ = [[2.0, 0.0, 1.0], [1.0, 1.0, -2.0]]
Y = [1, 2]


def _batch(B=4, K=5, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    mk = lambda: torch.randn(B, K, generator=g)
    s, sa, sd = (mk().requires_grad_(requires_grad) for _ in range(3))
    t, ta = mk(), mk()
    y = torch.randint(0, K, (B,), generator=g)
    return s, t, y, sa, ta, sd


# ----------------------------------------------------------------------------- KD


def test_kd_matches_hand_computation_with_t_squared():
    s, t, y = torch.tensor(S), torch.tensor(T_), torch.tensor(Y)
    for T in (1.0, 4.0):
        kd = kl_divergence_t(s, t, T)
        assert kd.item() == pytest.approx(_kl_hand(S, T_, T), rel=1e-5)
    out = kd_loss(s, t, y, CFG)
    expect = _ce_hand(S, Y) + 0.5 * _kl_hand(S, T_, 4.0)
    assert out["loss"].item() == pytest.approx(expect, rel=1e-5)
    assert out["ce"].item() == pytest.approx(_ce_hand(S, Y), rel=1e-5)
    assert out["kd"].item() == pytest.approx(_kl_hand(S, T_, 4.0), rel=1e-5)


def test_kd_is_scaled_by_t_squared():
    # With s/T and t/T fixed, the raw KL is unchanged, so the loss must scale exactly by T^2.
    s, t = torch.tensor(S), torch.tensor(T_)
    raw = kl_divergence_t(s, t, 1.0)
    assert kl_divergence_t(s * 4, t * 4, 4.0).item() == pytest.approx(16 * raw.item(), rel=1e-5)


def test_kd_teacher_is_a_constant():
    s, t, y, *_ = _batch()
    t = t.clone().requires_grad_(True)
    kd_loss(s, t, y, CFG)["loss"].backward()
    assert t.grad is None and s.grad is not None


def test_float16_teacher_logits_match_float32():
    s, t, y, sa, ta, _ = _batch()
    a = dad_loss(s, t, y, sa, ta, None, CFG)
    b = dad_loss(s, t.half(), y, sa, ta.half(), None, CFG)
    assert b["loss"].dtype == torch.float32
    assert b["loss"].item() == pytest.approx(a["loss"].item(), rel=1e-3)


# ----------------------------------------------------------------------------- DAD


def test_dad_all_accepted_equals_hand_sum():
    s, t, y = torch.tensor(S), torch.tensor(T_), torch.tensor(Y)
    sa, ta = s.flip(1), t.roll(1, dims=1)
    out = dad_loss(s, t, y, sa, ta, torch.tensor([True, True]), CFG)
    kl_adv = _kl_hand(sa.tolist(), ta.tolist(), 4.0)
    expect = _ce_hand(S, Y) + 0.5 * _kl_hand(S, T_, 4.0) + 0.5 * kl_adv
    assert out["loss"].item() == pytest.approx(expect, rel=1e-5)
    assert out["kd_adv"].item() == pytest.approx(kl_adv, rel=1e-5)
    assert out["accepted_fraction"].item() == 1.0


def test_dad_adversarial_weighting_batch_counts_each_accepted_row_as_one_example():
    # Hand computation: rows 0 and 2 of 4 accepted. "batch": (kl_0 + kl_2) / 4; "accepted": (kl_0 + kl_2) / 2.
    s, t, y, sa, ta, _ = _batch()
    acc = torch.tensor([True, False, True, False])
    rows = [0, 2]
    summed = sum(_kl_hand([sa[i].tolist()], [ta[i].tolist()], 4.0) for i in rows)
    batch = dad_loss(s, t, y, sa, ta, acc, DistillConfig(adversarial_weighting="batch"))
    accepted = dad_loss(s, t, y, sa, ta, acc, DistillConfig(adversarial_weighting="accepted"))
    assert CFG.adversarial_weighting == "batch"  # the default
    assert batch["kd_adv"].item() == pytest.approx(summed / 4, rel=1e-5)
    assert accepted["kd_adv"].item() == pytest.approx(summed / 2, rel=1e-5)
    clean = _ce_hand(s.tolist(), y.tolist()) + 0.5 * _kl_hand(s.tolist(), t.tolist(), 4.0)
    assert batch["loss"].item() == pytest.approx(clean + 0.5 * summed / 4, rel=1e-5)
    assert accepted["loss"].item() == pytest.approx(clean + 0.5 * summed / 2, rel=1e-5)


def test_bad_adversarial_weighting_names_the_field():
    with pytest.raises(ValueError, match="adversarial_weighting"):
        DistillConfig(adversarial_weighting="mean")


def test_dad_rejected_rows_add_no_loss_and_no_gradient():
    s, t, y, sa, ta, _ = _batch()
    acc = torch.tensor([True, False, True, False])
    out = dad_loss(s, t, y, sa, ta, acc, CFG)
    # the adversarial term sums accepted rows only, over the batch size (adversarial_weighting="batch")
    expect = kl_divergence_t(sa[acc], ta[acc], 4.0) * 2 / 4
    assert out["kd_adv"].item() == pytest.approx(expect.item(), rel=1e-6)
    assert out["accepted_fraction"].item() == 0.5
    out["loss"].backward()
    assert torch.all(sa.grad[~acc] == 0) and torch.any(sa.grad[acc] != 0)
    # garbage (even non-finite) teacher logits in a rejected row change nothing
    ta2 = ta.clone()
    ta2[1] = torch.tensor([1e4, -1e4, float("nan"), float("inf"), 3.0])
    assert dad_loss(s, t, y, sa, ta2, acc, CFG)["loss"].item() == out["loss"].item()


def test_non_finite_student_logits_in_rejected_rows_do_not_leak_nan():
    s, t, y, sa, ta, _ = _batch()
    acc = torch.tensor([True, False, True, True])
    bad = sa.detach().clone()
    bad[1] = torch.tensor([float("nan"), float("inf"), 0.0, 1.0, 2.0])
    bad.requires_grad_(True)
    out = dad_loss(s, t, y, bad, ta, acc, CFG)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and torch.isfinite(bad.grad).all()
    assert torch.all(bad.grad[1] == 0)


def test_dad_all_rejected_gives_zero_adv_term_and_backward_works():
    s, t, y, sa, ta, _ = _batch()
    acc = torch.zeros(4, dtype=torch.bool)
    kl = kl_divergence_t(sa, ta, 4.0, acc)
    assert kl.item() == 0.0 and kl.grad_fn is not None
    out = dad_loss(s, t, y, sa, ta, acc, CFG)
    assert out["kd_adv"].item() == 0.0 and out["accepted_fraction"].item() == 0.0
    assert out["loss"].item() == pytest.approx(kd_loss(s, t, y, CFG)["loss"].item(), rel=1e-6)
    out["loss"].backward()
    assert torch.all(sa.grad == 0)


def test_dad_without_adversarial_partner_is_kd():
    s, t, y, *_ = _batch()
    out = dad_loss(s, t, y, None, None, None, CFG)
    assert out["kd_adv"].item() == 0.0
    assert out["loss"].item() == pytest.approx(kd_loss(s, t, y, CFG)["loss"].item(), rel=1e-6)


def test_labels_only_affect_the_clean_ce_term():
    s, t, y, sa, ta, _ = _batch()
    a = dad_loss(s, t, y, sa, ta, None, CFG)
    b = dad_loss(s, t, (y + 1) % 5, sa, ta, None, CFG)
    assert a["ce"].item() != b["ce"].item()
    for k in ("kd_clean", "kd_adv"):
        assert a[k].item() == b[k].item()
    assert (a["loss"] - a["ce"]).item() == pytest.approx((b["loss"] - b["ce"]).item(), rel=1e-6)


def test_label_smoothing_is_applied_to_ce():
    s, t, y, *_ = _batch()
    smoothed = cross_entropy(s, y, DistillConfig(label_smoothing=0.1))["ce"]
    assert smoothed.item() == pytest.approx(F.cross_entropy(s, y, label_smoothing=0.1).item(), rel=1e-6)
    assert smoothed.item() != cross_entropy(s, y, CFG)["ce"].item()


# ----------------------------------------------------------------------------- baselines


def test_dist_identical_distributions_have_zero_relation_losses():
    s, _, y, *_ = _batch()
    out = dist_loss(s, s.detach().clone(), y, CFG)
    assert out["inter"].abs().item() < 1e-5 and out["intra"].abs().item() < 1e-5
    assert out["loss"].item() == pytest.approx(out["ce"].item(), abs=1e-5)


def test_dist_matches_hand_pearson():
    s, t, y = torch.tensor(S), torch.tensor(T_), torch.tensor(Y)

    def pearson(a, b):
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        num = sum((x - ma) * (z - mb) for x, z in zip(a, b))
        return num / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((z - mb) ** 2 for z in b))

    ps = [_softmax(r, 1.0) for r in S]
    pt = [_softmax(r, 1.0) for r in T_]
    inter = 1 - sum(pearson(a, b) for a, b in zip(ps, pt)) / 2
    cols = lambda p: [list(c) for c in zip(*p)]
    intra = 1 - sum(pearson(a, b) for a, b in zip(cols(ps), cols(pt))) / 3
    out = dist_loss(s, t, y, DistillConfig(dist_beta=2.0, dist_gamma=3.0))
    assert out["inter"].item() == pytest.approx(inter, rel=1e-4)
    assert out["intra"].item() == pytest.approx(intra, rel=1e-4)
    assert out["loss"].item() == pytest.approx(_ce_hand(S, Y) + 2 * inter + 3 * intra, rel=1e-4)


def test_ard_matches_student_adv_to_teacher_clean():
    s, t, y, sa, ta, _ = _batch()
    out = ard_loss(s, sa, t, y, CFG)
    expect = 0.5 * F.cross_entropy(s, y) + 0.5 * kl_divergence_t(sa, t, 4.0)
    assert out["loss"].item() == pytest.approx(expect.item(), rel=1e-6)
    # perturbing the teacher's clean logits must move the adversarial KL term
    assert ard_loss(s, sa, t + torch.randn_like(t), y, CFG)["kd_adv"].item() != out["kd_adv"].item()
    # and the student's clean logits feed only the CE term
    moved = ard_loss(s.detach() + 1.0 * torch.arange(5.0), sa, t, y, CFG)
    assert moved["kd_adv"].item() == out["kd_adv"].item()


def test_ard_accepted_mask_zeroes_rejected_gradients():
    s, t, y, sa, _, _ = _batch()
    acc = torch.tensor([False, True, True, True])
    ard_loss(s, sa, t, y, CFG, accepted=acc)["loss"].backward()
    assert torch.all(sa.grad[0] == 0) and torch.any(sa.grad[1:] != 0)


def test_rslad_has_no_ce_term_and_uses_temperature_one():
    s, t, y, sa, _, _ = _batch()
    r = 5 / 6
    out = rslad_loss(s, sa, t, CFG)
    expect = (1 - r) * kl_divergence_t(s, t, 1.0) + r * kl_divergence_t(sa, t, 1.0)
    assert out["loss"].item() == pytest.approx(expect.item(), rel=1e-6)
    assert "ce" not in out
    # label independence via the dispatcher (which carries labels)
    a = compute_objective("rslad", ObjectiveInputs(y, s, t, sa), CFG)
    b = compute_objective("rslad", ObjectiveInputs((y + 1) % 5, s, t, sa), CFG)
    assert a["loss"].item() == b["loss"].item()
    assert rslad_loss(s, sa, t, DistillConfig(temperature=10.0))["loss"].item() == out["loss"].item()


def test_dat_is_ce_on_clean_plus_ce_on_student_adversarial():
    s, _, y, _, _, sd = _batch()
    out = dat_loss(s, sd, y, CFG)
    assert out["loss"].item() == pytest.approx((F.cross_entropy(s, y) + F.cross_entropy(sd, y)).item(), rel=1e-6)


def test_dat_dad_adds_alpha_weighted_student_adversarial_ce():
    s, t, y, sa, ta, sd = _batch()
    out = dat_dad_loss(s, t, y, sa, ta, None, sd, CFG)
    base = dad_loss(s, t, y, sa, ta, None, CFG)["loss"]
    assert out["loss"].item() == pytest.approx((base + 0.5 * F.cross_entropy(sd, y)).item(), rel=1e-6)
    assert {"ce", "kd_clean", "kd_adv", "ce_dat", "accepted_fraction"} <= out.keys()


# ----------------------------------------------------------------------------- dispatcher


def test_every_objective_dispatches_and_backprops():
    assert list_objectives() == ["ce", "kd", "dist", "ard", "rslad", "dad", "dat", "dat+dad"]
    expected = {"ce": cross_entropy, "kd": kd_loss, "dist": dist_loss, "dat": dat_loss}
    for name in list_objectives():
        s, t, y, sa, ta, sd = _batch(seed=1)
        inputs = ObjectiveInputs(y, s, t, sa, ta, torch.tensor([True, False, True, True]), sd)
        out = compute_objective(name, inputs, CFG)
        assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
        assert all(v.ndim == 0 and not v.requires_grad for k, v in out.items() if k != "loss")
        out["loss"].backward()
        assert s.grad is not None or sa.grad is not None
        if name in ("ce", "kd", "dist"):
            args = (s, y, CFG) if name == "ce" else (s, t, y, CFG)
            assert out["loss"].item() == pytest.approx(expected[name](*args)["loss"].item(), rel=1e-6)
        if name == "dat":
            assert out["loss"].item() == pytest.approx(dat_loss(s, sd, y, CFG)["loss"].item(), rel=1e-6)
        if name == "dad":
            ref = dad_loss(s, t, y, sa, ta, inputs.accepted, CFG)["loss"]
            assert out["loss"].item() == pytest.approx(ref.item(), rel=1e-6)
    assert set(OBJECTIVES) == set(list_objectives())


def test_objective_needs_declares_inputs():
    assert objective_needs("ce") == frozenset()
    assert objective_needs("kd") == {"teacher_clean"}
    assert objective_needs("dad") == {"teacher_clean", "student_adv", "teacher_adv"}
    assert objective_needs("dat+dad") == {"teacher_clean", "student_adv", "teacher_adv", "student_dat_adv"}
    assert objective_needs("dat") == {"student_dat_adv"}


def test_unknown_objective_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown objective 'kld'.*dat\+dad"):
        compute_objective("kld", ObjectiveInputs(torch.zeros(2, dtype=torch.long), torch.zeros(2, 3)), CFG)
    with pytest.raises(ValueError, match="valid objectives"):
        objective_needs("nope")


@pytest.mark.parametrize("name,missing", [("kd", "teacher_clean"), ("ard", "student_adv"),
                                          ("dad", "teacher_adv"), ("dat", "student_dat_adv"),
                                          ("dat+dad", "student_dat_adv")])
def test_missing_input_names_field_and_objective(name, missing):
    s, t, y, sa, ta, sd = _batch()
    fields = dict(teacher_clean=t, student_adv=sa, teacher_adv=ta, student_dat_adv=sd)
    fields[missing] = None
    with pytest.raises(ValueError, match=rf"'{re.escape(name)}'.*{missing}"):
        compute_objective(name, ObjectiveInputs(y, s, **fields), CFG)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("field,value", [("temperature", 0.0), ("temperature", float("nan")), ("alpha", -0.1),
                                         ("label_smoothing", 1.0), ("label_smoothing", -0.1),
                                         ("dist_temperature", -1.0), ("rslad_alpha", 1.5)])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DistillConfig(**{field: value})


def test_shape_and_dtype_mismatches_name_the_argument():
    s, t, y, sa, ta, _ = _batch()
    with pytest.raises(ValueError, match="teacher_logits"):
        kd_loss(s, t[:, :3], y, CFG)
    with pytest.raises(ValueError, match="teacher_logits"):
        kd_loss(s, t[:1], y, CFG)  # would broadcast silently without the check
    with pytest.raises(ValueError, match="labels"):
        kd_loss(s, t, y.int(), CFG)
    with pytest.raises(ValueError, match="labels"):
        kd_loss(s, t, y[:2], CFG)
    with pytest.raises(ValueError, match="student_logits"):
        kd_loss(s[0], t, y, CFG)
    with pytest.raises(ValueError, match="student_adv"):
        dad_loss(s, t, y, sa[:2], ta, None, CFG)
    with pytest.raises(ValueError, match="teacher_adv"):
        dad_loss(s, t, y, sa, ta.T, None, CFG)
    with pytest.raises(ValueError, match="accepted"):
        dad_loss(s, t, y, sa, ta, torch.ones(4), CFG)
    with pytest.raises(ValueError, match="accepted"):
        dad_loss(s, t, y, sa, ta, torch.ones(3, dtype=torch.bool), CFG)
    with pytest.raises(ValueError, match="alpha"):
        ard_loss(s, sa, t, y, DistillConfig(alpha=1.5))
