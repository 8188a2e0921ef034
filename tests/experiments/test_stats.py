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
