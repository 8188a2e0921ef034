"""Paired tests of two students on the same images (experiments.stats), against hand-computed cases."""
import numpy as np
import pytest

from experiments.stats import paired_difference


def test_identical_models_differ_by_nothing():
    a = np.random.default_rng(0).integers(0, 2, (3, 200))
    r = paired_difference([a], [a.copy()], n_boot=500, n_perm=500)
    assert r.difference == 0 and r.ci95 == (0.0, 0.0) and r.p_value == 1.0 and not r.significant()


def test_a_model_right_everywhere_beats_one_wrong_everywhere():
    r = paired_difference([np.ones((2, 60))], [np.zeros((2, 60))], n_boot=500, n_perm=999)
    assert r.difference == 100 and r.ci95 == (100.0, 100.0) and r.p_value == pytest.approx(1 / 1000)
    assert r.significant() and r.per_seed == (100.0, 100.0)


def test_interval_matches_the_paired_normal_approximation():
    """A right on 60 of 400 images B gets wrong, B right on 20 A gets wrong: +10 points, se from the 80 discordant."""
    n = 400
    a, b = np.zeros((1, n)), np.zeros((1, n))
    a[0, :60] = 1
    b[0, 60:80] = 1
    a[0, 100:300] = b[0, 100:300] = 1  # agree on 200 more
    r = paired_difference([a], [b], n_boot=4000, n_perm=4000)
    d = (a - b)[0]
    se = 100 * d.std() / np.sqrt(n)
    assert r.difference == pytest.approx(10.0)
    assert r.ci95[0] == pytest.approx(10 - 1.96 * se, abs=0.8) and r.ci95[1] == pytest.approx(10 + 1.96 * se, abs=0.8)
    assert r.p_value < 0.001 and r.significant()


def test_domains_weigh_equally_whatever_their_size():
    small_a, small_b = np.ones((1, 10)), np.zeros((1, 10))  # +100 on 10 images
    big = np.zeros((1, 1000))                                 # 0 on 1,000 images
    r = paired_difference([small_a, big], [small_b, big.copy()], n_boot=200, n_perm=200)
    assert r.difference == pytest.approx(50.0)


def test_seeds_spread_widens_the_interval():
    """Per-seed differences +20 and -20 (mean 0): the interval must cover both signs' seeds."""
    n = 200
    a = np.zeros((2, n))
    b = np.zeros((2, n))
    a[0, :40] = 1  # seed 0: A +20
    b[1, :40] = 1  # seed 1: B +20
    r = paired_difference([a], [b], n_boot=2000, n_perm=500)
    assert r.per_seed == (20.0, -20.0) and r.difference == 0
    assert r.ci95[0] <= -15 and r.ci95[1] >= 15


def test_unpaired_shapes_are_refused():
    with pytest.raises(ValueError, match="same"):
        paired_difference([np.ones((2, 5))], [np.ones((2, 6))])


def test_seed_t_interval_matches_the_textbook_case():
    """Per-seed differences 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t(0.975, 2) = 4.303."""
    from experiments.stats import seed_t_test

    r = seed_t_test([1.0, 2.0, 3.0])
    half = 4.302653 / 3 ** 0.5
    assert r.mean == 2 and r.ci95 == pytest.approx((2 - half, 2 + half), abs=1e-4) and r.seeds == 3
    assert r.p_value == pytest.approx(0.0742, abs=5e-4)  # t = 3.464 on 2 df, two-sided
    one = seed_t_test([5.0])
    assert one.mean == 5 and np.isnan(one.ci95[0]) and np.isnan(one.p_value)


def test_holm_adjusts_in_step_down_order_and_keeps_the_input_order():
    from experiments.stats import holm

    # sorted 0.01, 0.02, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.02), max(0.04, 1 x 0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    adjusted = holm([float("nan"), 0.01])
    assert np.isnan(adjusted[0]) and adjusted[1] == pytest.approx(0.01)
