"""Paired comparisons of two students on the same test images, over seeds.

Input per domain: 0/1 correctness arrays of shape (seeds, images) for models A and B, seed s of A paired with
seed s of B (same data order and initialisation seed). The statistic is the difference of top-1 in points,
averaged over seeds, and over domains with equal weight (the "shift average" of the paper's tables).

- 95% interval: a two-level paired bootstrap (seeds with replacement, then images with replacement within
  each domain), so it carries both the test set's sampling noise and the seed-to-seed noise.
- p-value: a paired sign-flip permutation test on the per-image differences (averaged over seeds): under
  "A and B are exchangeable on each image" each difference's sign is a coin flip. Two-sided. It ignores seed
  noise (a seed-to-seed swing of a few points is not in it), so read it as "on these trained models".
- Seed-level: a t-interval and t-test over the per-seed differences (`seed_t_test`): n seeds give n - 1 degrees
  of freedom, which carries seed noise in full and test-set noise through each seed's own difference. With
  few seeds it is wide, as it should be.
- Several contrasts: `holm` adjusts p-values for the family they are reported in (Holm-Bonferroni).
"""
from __future__ import annotations

from dataclasses import dataclass

import math
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class PairedResult:
    difference: float              # points of top-1, A - B
    ci95: tuple[float, float]
    p_value: float
    per_seed: tuple[float, ...]    # the difference seed by seed

    def significant(self) -> bool:
        return self.ci95[0] > 0 or self.ci95[1] < 0


def _statistic(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return 100 * float(np.mean([(x - y).mean() for x, y in zip(a, b)]))


def paired_difference(a: list[np.ndarray], b: list[np.ndarray], n_boot: int = 10_000, n_perm: int = 10_000,
                      seed: int = 0) -> PairedResult:
    """A - B on per-domain correctness arrays (each (seeds, images), 0/1), see the module docstring."""
    a = [np.asarray(x, dtype=np.float64) for x in a]
    b = [np.asarray(x, dtype=np.float64) for x in b]
    for x, y in zip(a, b):
        if x.shape != y.shape or x.ndim != 2:
            raise ValueError(f"paired arrays must have the same (seeds, images) shape, got {x.shape} and {y.shape}")
    rng = np.random.default_rng(seed)
    n_seeds = a[0].shape[0]
    observed = _statistic(a, b)
    per_seed = tuple(100 * float(np.mean([(x[s] - y[s]).mean() for x, y in zip(a, b)])) for s in range(n_seeds))

    diffs = [x - y for x, y in zip(a, b)]  # (seeds, images) per domain
    boot = np.empty(n_boot)
    for i in range(n_boot):
        seeds = rng.integers(0, n_seeds, n_seeds)
        boot[i] = 100 * np.mean([d[seeds][:, rng.integers(0, d.shape[1], d.shape[1])].mean() for d in diffs])
    lo, hi = np.percentile(boot, [2.5, 97.5])

    per_image = [d.mean(axis=0) for d in diffs]  # seed-averaged difference per image
    flips = [rng.choice((-1.0, 1.0), size=(n_perm, len(d))) for d in per_image]
    permuted = 100 * np.mean([(f * d).mean(axis=1) for f, d in zip(flips, per_image)], axis=0)
    p = (1 + np.sum(np.abs(permuted) >= abs(observed) - 1e-12)) / (1 + n_perm)
    return PairedResult(observed, (float(lo), float(hi)), float(p), per_seed)


@dataclass(frozen=True)
class SeedTest:
    mean: float                    # mean per-seed difference (points)
    ci95: tuple[float, float]      # t-interval, n - 1 degrees of freedom (NaN with one seed)
    p_value: float                 # two-sided one-sample t-test of "mean difference = 0" (NaN with one seed)
    seeds: int


def seed_t_test(per_seed: Sequence[float], confidence: float = 0.95) -> SeedTest:
    """A t-interval and t-test over per-seed differences (each seed's A - B on the same images)."""
    from scipy import stats

    x = np.asarray(per_seed, dtype=np.float64)
    n, mean = len(x), float(np.mean(x))
    if n < 2:
        return SeedTest(mean, (math.nan, math.nan), math.nan, n)
    se = float(np.std(x, ddof=1)) / math.sqrt(n)
    if se == 0:
        return SeedTest(mean, (mean, mean), 1.0 if mean == 0 else 0.0, n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return SeedTest(mean, (mean - half, mean + half), p, n)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input's order (NaN stays NaN and does not count)."""
    known = sorted((p, i) for i, p in enumerate(p_values) if p == p)
    out = [math.nan] * len(p_values)
    running, m = 0.0, len(known)
    for rank, (p, i) in enumerate(known):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
