"""Aggregates of the per-sample perturbation diagnostics (dad_core.perturbation) in commit markers and the manifest.

Each shard's commit marker carries a `PerturbationTally` of its Q(x') rows; the manifest merges them (format v4).
Merging is a sum (counts, sums, sparse histograms), so the manifest costs one pass over the markers and a
request reads the manifest alone, never the set. Quantiles come from log-spaced histogram bins (50 per
decade from 1e-6 to 1e3, both signs): the value reported is the bin's geometric centre, within 2.3% of the
true quantile; means, minima and maxima are exact.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

DIAGNOSTIC_NAMES = ("delta_l2", "delta_linf",
                    "l2_vs_qx", "linf_vs_qx", "same_vs_qx", "codes_vs_qx",
                    "l2_vs_qqx", "linf_vs_qqx", "same_vs_qqx", "codes_vs_qqx",
                    "kl_vs_qx", "conf_drop_vs_qx")
PER_CLASS = ("same_vs_qx", "codes_vs_qx", "l2_vs_qx", "kl_vs_qx")   # kept per class (means)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)

_BINS_PER_DECADE = 50
_LOG_MIN, _LOG_MAX = -6, 3


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _bin(v: float) -> int:
    """0 for |v| < 1e-6; +-(1 + k) for the k-th log bin of |v| (values beyond 1e3 land in the last bin)."""
    a = abs(v)
    if a < 10 ** _LOG_MIN:
        return 0
    k = min(int((math.log10(a) - _LOG_MIN) * _BINS_PER_DECADE), (_LOG_MAX - _LOG_MIN) * _BINS_PER_DECADE - 1)
    return (1 + k) if v > 0 else -(1 + k)


def _centre(b: int) -> float:
    if b == 0:
        return 0.0
    k = abs(b) - 1
    v = 10 ** (_LOG_MIN + (k + 0.5) / _BINS_PER_DECADE)
    return v if b > 0 else -v


class MetricTally(_Model):
    n: int = 0
    sum: float = 0.0
    min: float | None = None
    max: float | None = None
    bins: dict[int, int] = Field(default_factory=dict)   # sparse histogram: bin -> count (see _bin)

    def add(self, values: Sequence[float]) -> None:
        for v in values:
            if v != v:  # NaN: not measured (no codes)
                continue
            v = float(v)
            self.n += 1
            self.sum += v
            self.min = v if self.min is None else min(self.min, v)
            self.max = v if self.max is None else max(self.max, v)
            b = _bin(v)
            self.bins[b] = self.bins.get(b, 0) + 1

    def merge(self, other: "MetricTally") -> None:
        self.n += other.n
        self.sum += other.sum
        for name, pick in (("min", min), ("max", max)):
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, theirs if mine is None else mine if theirs is None else pick(mine, theirs))
        for b, c in other.bins.items():
            self.bins[b] = self.bins.get(b, 0) + c

    def quantile(self, q: float) -> float | None:
        if not self.n:
            return None
        target, seen = q * self.n, 0
        for b in sorted(self.bins):
            seen += self.bins[b]
            if seen >= target:
                return min(max(_centre(b), self.min), self.max)
        return self.max


class ClassTally(_Model):
    n: int = 0
    sums: dict[str, float] = Field(default_factory=dict)   # PER_CLASS metric -> sum (NaN-free values only)
    counts: dict[str, int] = Field(default_factory=dict)


class PerturbationTally(_Model):
    """Mergeable tallies of every diagnostic over a shard's (or the set's) Q(x') rows."""

    metrics: dict[str, MetricTally] = Field(default_factory=dict)
    classes: dict[int, ClassTally] = Field(default_factory=dict)

    def add(self, values: Mapping[str, Sequence[float]], labels: Sequence[int]) -> None:
        """Add a batch: `values` maps DIAGNOSTIC_NAMES to per-item values, `labels` the items' classes."""
        for name in DIAGNOSTIC_NAMES:
            self.metrics.setdefault(name, MetricTally()).add(values[name])
        for i, label in enumerate(labels):
            c = self.classes.setdefault(int(label), ClassTally())
            c.n += 1
            for name in PER_CLASS:
                v = float(values[name][i])
                if v == v:
                    c.sums[name] = c.sums.get(name, 0.0) + v
                    c.counts[name] = c.counts.get(name, 0) + 1

    def merge(self, other: "PerturbationTally") -> None:
        for name, t in other.metrics.items():
            self.metrics.setdefault(name, MetricTally()).merge(t)
        for label, t in other.classes.items():
            c = self.classes.setdefault(label, ClassTally())
            c.n += t.n
            for name, s in t.sums.items():
                c.sums[name] = c.sums.get(name, 0.0) + s
                c.counts[name] = c.counts.get(name, 0) + t.counts.get(name, 0)

    def mean(self, name: str) -> float | None:
        t = self.metrics.get(name)
        return t.sum / t.n if t is not None and t.n else None

    def summary(self) -> "PerturbationSummary":
        """What a person reads: per metric its mean, quantiles, min and max; per class the PER_CLASS means."""
        metrics = {}
        for name in DIAGNOSTIC_NAMES:
            t = self.metrics.get(name)
            if t is None or not t.n:
                continue
            metrics[name] = MetricSummary(n=t.n, mean=t.sum / t.n, min=t.min, max=t.max,
                                          quantiles={f"q{round(q * 100):02d}": t.quantile(q) for q in QUANTILES})
        per_class = {label: {name: c.sums[name] / c.counts[name] for name in PER_CLASS if c.counts.get(name)}
                     for label, c in sorted(self.classes.items())}
        return PerturbationSummary(metrics=metrics, per_class=per_class,
                                   warning=immaterial_attack({name: self.mean(name) for name in DIAGNOSTIC_NAMES}))


def immaterial_attack(means: Mapping[str, float | None]) -> str | None:
    """A plain warning when the attack barely changes Q(x'), or None, from the diagnostics' means. Immaterial:
    over half the stored Q(x') values identical to Q(x)'s, or under 1% of the codes changed against Q(x) or
    against Q(Q(x)) (then what Q(x') adds over Q(x) is the second pass through Q, not the attack)."""
    reasons = []
    same, codes, codes_qq = means.get("same_vs_qx"), means.get("codes_vs_qx"), means.get("codes_vs_qqx")
    if same is not None and same > 0.5:
        reasons.append(f"{same:.0%} of Q(x')'s pixel values are identical to Q(x)'s")
    if codes is not None and codes < 0.01:
        reasons.append(f"only {codes:.2%} of Q's codes changed")
    elif codes_qq is not None and codes_qq < 0.01:
        reasons.append(f"only {codes_qq:.2%} of Q's codes differ from Q(Q(x))'s (Q applied twice, no attack)")
    if not reasons:
        return None
    return ("warning: the attack is immaterial: " + " and ".join(reasons) + ". Q(x') is then little more than "
            "Q(Q(x)), so a DAD student learns what the Q(Q(x)) control (attack.steps=0) learns. To make the attack "
            "count: a larger attack.step_size and attack.epsilon (e.g. 10x), more attack.steps, or the gradient "
            "through Q (attack.through_discretizer=true); compare against attack.steps=0 and attack.delta=random.")


class MetricSummary(_Model):
    n: int
    mean: float
    min: float | None
    max: float | None
    quantiles: dict[str, float | None]   # q05, q25, q50, q75, q95


class PerturbationSummary(_Model):
    """The diagnostics of a set as the API and UI show them (from the manifest's tally; no scan)."""

    metrics: dict[str, MetricSummary] = Field(default_factory=dict)
    per_class: dict[int, dict[str, float]] = Field(default_factory=dict)   # label -> PER_CLASS metric means
    warning: str | None = None   # set when the attack is immaterial (immaterial_attack), saying what to change
