"""Evaluation metric math (pure): top-1 under a class protocol, its 95% interval, per-class accuracy, mCE.

Rates here are fractions in [0, 1]; reports turn them into percents. The protocols follow the papers that
define the benchmarks (Sec. 4.1 of the DAD paper lists them):

- ImageNet-A / -R: a 1,000-way model is scored on the 200 listed logits only (`top1_predictions` with
  `logit_indices`), as in Hendrycks et al. (2021).
- ImageNet-C: the mean Corruption Error, each corruption's error summed over severities 1-5 and divided by
  AlexNet's (Hendrycks & Dietterich, 2019); AlexNet's errors ship in `dad_core/data/alexnet_errors.json`.
- Fréchet distance between two feature sets' Gaussians (FID's formula; the paper's App. D compares sample sets
  to shifted test sets this way, in the teacher's feature space).
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from statistics import NormalDist
from typing import Mapping, Sequence

import torch

CI_METHODS = ("wilson", "normal")
SEVERITIES = (1, 2, 3, 4, 5)


def top1_predictions(logits: torch.Tensor, logit_indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
    """Argmax over the listed logits only, as a position in `logit_indices` (all logits when None).

    A 1,000-way model on a 200-class benchmark must not lose points for predicting a class the benchmark
    cannot contain, so the other 800 logits are dropped before the argmax, not after.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (B, K), got {tuple(logits.shape)}")
    if logit_indices is not None:
        index = torch.as_tensor(logit_indices, dtype=torch.long, device=logits.device)
        if index.numel() == 0:
            raise ValueError("logit_indices must not be empty")
        if index.min() < 0 or index.max() >= logits.shape[1]:
            raise ValueError(f"logit_indices must lie in [0, {logits.shape[1]}), got [{index.min()}, {index.max()}]")
        logits = logits.index_select(1, index)  # (B, len(logit_indices))
    return logits.argmax(dim=1)


def class_counts(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(correct, total) per target class, each a (num_classes,) int64 tensor; they add across batches."""
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ in shape")
    targets = targets.long().cpu()
    hits = (predictions.long().cpu() == targets).long()
    total = torch.bincount(targets, minlength=num_classes)
    correct = torch.bincount(targets, weights=hits, minlength=num_classes).long()
    if total.numel() != num_classes:
        raise ValueError(f"targets must lie in [0, {num_classes}), got max {targets.max().item()}")
    return correct, total


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)  # 1.95996... for 95%


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Preferred over the normal interval because it stays inside [0, 1] and is not degenerate at 0% or 100%
    accuracy, which small suites (a few hundred images) and weak models (ResNet50 on ImageNet-A) hit.
    """
    p, n, z = _proportion(correct, total), total, _z(confidence)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def normal_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Normal-approximation (Wald) interval p +- z sqrt(p(1-p)/n), clipped to [0, 1]."""
    p, n, z = _proportion(correct, total), total, _z(confidence)
    half = z * math.sqrt(p * (1 - p) / n)
    return max(0.0, p - half), min(1.0, p + half)


def accuracy_interval(correct: int, total: int, method: str = "wilson", confidence: float = 0.95) -> tuple[float, float]:
    if method not in CI_METHODS:
        raise ValueError(f"CI method must be one of {CI_METHODS}, got {method!r}")
    return (wilson_interval if method == "wilson" else normal_interval)(correct, total, confidence)


def _proportion(correct: int, total: int) -> float:
    if total <= 0:
        raise ValueError("an accuracy needs at least one image (total must be > 0)")
    if not 0 <= correct <= total:
        raise ValueError(f"correct must be in [0, total={total}], got {correct}")
    return correct / total


def per_class_accuracy(correct: Sequence[int], total: Sequence[int]) -> list[float | None]:
    """Accuracy of each class; None for a class without images (it has no accuracy, not 0%)."""
    if len(correct) != len(total):
        raise ValueError(f"correct has {len(correct)} classes, total has {len(total)}")
    return [int(c) / int(t) if int(t) else None for c, t in zip(correct, total)]


@lru_cache(maxsize=None)
def _alexnet_table() -> dict:
    return json.loads(resources.files("dad_core.data").joinpath("alexnet_errors.json").read_text())


def alexnet_errors(include_extra: bool = False) -> dict[str, float]:
    """AlexNet's ImageNet-C error per corruption (mean over severities 1-5), the mCE normaliser.

    The 15 'common' corruptions make up the benchmark's mCE; `include_extra` adds the 4 held-out ones
    (speckle_noise, gaussian_blur, spatter, saturate).
    """
    table = _alexnet_table()
    return {**table["common"], **(table["extra"] if include_extra else {})}


def corruption_error(errors_by_severity: Sequence[float], alexnet_error: float) -> float:
    """CE_c = sum_s E_{s,c}(f) / sum_s E_{s,c}(AlexNet) over severities 1-5 (Hendrycks & Dietterich, 2019).

    AlexNet's errors are published as a mean over the five severities, so the ratio of sums is the ratio
    of means; that is only the benchmark's CE when all five severities were evaluated.
    """
    if not errors_by_severity:
        raise ValueError("corruption_error needs at least one severity's error")
    if alexnet_error <= 0:
        raise ValueError(f"alexnet_error must be > 0, got {alexnet_error}")
    return (sum(errors_by_severity) / len(errors_by_severity)) / alexnet_error


def corruption_errors(errors: Mapping[str, Sequence[float]],
                      normaliser: Mapping[str, float] | None = None) -> dict[str, float]:
    """CE per corruption from {corruption: [error at each severity]}; the normaliser defaults to AlexNet's."""
    normaliser = alexnet_errors(include_extra=True) if normaliser is None else normaliser
    unknown = sorted(set(errors) - set(normaliser))
    if unknown:
        raise ValueError(f"no AlexNet error for corruptions {unknown}; known: {sorted(normaliser)}")
    return {name: corruption_error(errs, normaliser[name]) for name, errs in errors.items()}


def mean_corruption_error(errors: Mapping[str, Sequence[float]],
                          normaliser: Mapping[str, float] | None = None) -> float:
    """mCE: the mean of the CEs over the corruptions given (the benchmark's mCE uses the 15 'common' ones)."""
    ces = corruption_errors(errors, normaliser)
    if not ces:
        raise ValueError("mean_corruption_error needs at least one corruption")
    return sum(ces.values()) / len(ces)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2) between Gaussians fitted to the rows
    of `a` (N, D) and `b` (M, D), in float64. The symmetric form needs only eigh (no scipy.linalg.sqrtm), and
    clipping tiny negative eigenvalues keeps it real when N or M < D makes a covariance singular. With few rows
    the estimate is biased upwards (as FID is): compare distances computed from sets of similar size."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D) with the same D, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("a Fréchet distance needs at least 2 rows per set")
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)
