import math

import pytest
import torch

from dad_core.metrics import (accuracy_interval, alexnet_errors, class_counts, corruption_error, corruption_errors,
                              mean_corruption_error, normal_interval, per_class_accuracy, top1_predictions,
                              wilson_interval)


def test_wilson_interval_matches_a_hand_computation():
    # 8/10 at 95%: z = 1.959964, z^2/n = 0.384146; centre = (0.8 + 0.192073) / 1.384146 = 0.716740,
    # half = 1.959964 / 1.384146 * sqrt(0.016 + 0.0096037) = 0.226579.
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.490161, abs=1e-5) and hi == pytest.approx(0.943318, abs=1e-5)
    # 0/10 is not degenerate (the Wald interval would be [0, 0]).
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.277532, abs=1e-5)


def test_normal_interval_matches_a_hand_computation_and_is_clipped():
    lo, hi = normal_interval(50, 100)  # 0.5 +- 1.959964 * 0.05
    assert lo == pytest.approx(0.5 - 0.0979982, abs=1e-6) and hi == pytest.approx(0.5 + 0.0979982, abs=1e-6)
    assert normal_interval(8, 10)[1] == 1.0  # 0.8 + 0.2479 clipped to 1
    assert accuracy_interval(50, 100, method="normal") == normal_interval(50, 100)


def test_interval_rejects_empty_and_impossible_counts():
    with pytest.raises(ValueError, match="at least one image"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="correct must be"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="CI method"):
        accuracy_interval(1, 2, method="bootstrap")


def test_top1_over_listed_logits_only():
    logits = torch.tensor([[9.0, 1.0, 5.0, 2.0],   # overall argmax 0; among [2, 3] -> position 0 (class 2)
                           [0.0, 9.0, 1.0, 3.0]])  # overall argmax 1; among [2, 3] -> position 1 (class 3)
    assert top1_predictions(logits).tolist() == [0, 1]
    assert top1_predictions(logits, [2, 3]).tolist() == [0, 1]
    with pytest.raises(ValueError, match="logit_indices must lie"):
        top1_predictions(logits, [4])


def test_class_counts_and_per_class_accuracy():
    predictions = torch.tensor([0, 1, 1, 2, 0])
    targets = torch.tensor([0, 1, 0, 2, 0])
    correct, total = class_counts(predictions, targets, num_classes=4)
    assert correct.tolist() == [2, 1, 1, 0] and total.tolist() == [3, 1, 1, 0]
    assert per_class_accuracy(correct.tolist(), total.tolist()) == [pytest.approx(2 / 3), 1.0, 1.0, None]


def test_mce_is_normalised_by_the_reference_errors():
    made_up_alexnet = {"fog": 0.5, "snow": 0.8}
    errors = {"fog": [0.1, 0.2, 0.3, 0.4, 0.5],  # mean 0.3 -> CE 0.6
              "snow": [0.4] * 5}                 # mean 0.4 -> CE 0.5
    assert corruption_errors(errors, made_up_alexnet) == {"fog": pytest.approx(0.6), "snow": pytest.approx(0.5)}
    assert mean_corruption_error(errors, made_up_alexnet) == pytest.approx(0.55)
    assert corruption_error([0.2, 0.4], 0.6) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no AlexNet error for corruptions \\['rain'\\]"):
        corruption_errors({"rain": [0.1]}, made_up_alexnet)


def test_alexnet_errors_are_the_published_fifteen():
    errors = alexnet_errors()
    assert len(errors) == 15 and errors["gaussian_noise"] == 0.886428 and errors["jpeg_compression"] == 0.6065
    assert len(alexnet_errors(include_extra=True)) == 19
    # AlexNet normalised by itself has CE 100% on every corruption.
    assert mean_corruption_error({c: [e] * 5 for c, e in errors.items()}) == pytest.approx(1.0)
    assert all(0 < e < 1 and not math.isnan(e) for e in errors.values())


def test_frechet_distance_is_zero_to_itself_and_matches_the_closed_form():
    """Diagonal Gaussians: d = |mu_a - mu_b|^2 + sum (s_a - s_b)^2 over the standard deviations."""
    from dad_core.metrics import frechet_distance

    g = torch.Generator().manual_seed(0)
    a = torch.randn(20_000, 3, generator=g, dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    b = a * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64) + torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    expected = 1.0 + (1 - 1) ** 2 + (1 - 2) ** 2 + (1 - 3) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.03)
    # fewer rows than dimensions: singular covariances still give a real, non-negative distance
    small = torch.randn(5, 16, generator=g)
    assert frechet_distance(small, small + 1) >= 16 - 1e-6
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(a, small)
