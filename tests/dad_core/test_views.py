"""Augmented views: drawn from (seed, key) alone, rendered one way, soft labels compressed without surprises."""
import numpy as np
import pytest

from dad_core.views import (
    View, ViewConfig, compress_logits, draw_views, expand_logits, render_view, render_views, stored_top_k,
)


def test_views_depend_on_the_seed_and_key_only():
    config = ViewConfig(8)
    a = draw_views(config, 0, "sample-a", 32, 32)
    assert a == draw_views(config, 0, "sample-a", 32, 32)
    assert a != draw_views(config, 0, "sample-b", 32, 32) and a != draw_views(config, 1, "sample-a", 32, 32)
    assert draw_views(ViewConfig(3), 0, "sample-a", 32, 32) == a[:3]  # fewer views: a prefix of the same draw
    assert len({v.flip for v in draw_views(ViewConfig(32), 0, "k", 32, 32)}) == 2


def test_boxes_follow_random_resized_crop_bounds():
    config = ViewConfig(200, scale=(0.25, 1.0))
    for v in draw_views(config, 3, "k", 40, 60):
        assert 0 <= v.top and v.top + v.height <= 40 and 0 <= v.left and v.left + v.width <= 60
        area = v.height * v.width / (40 * 60)
        assert 0.2 <= area <= 1.0 and 3 / 4 - 0.1 <= v.width / v.height <= 4 / 3 + 0.1


def test_render_is_the_crop_resized_and_flipped():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    whole = render_view(pixels, View(0, 0, 16, 16, False), 16)
    np.testing.assert_array_equal(whole, pixels)  # the identity box at the same size changes nothing
    flipped = render_view(pixels, View(4, 2, 8, 8, True), 8)
    np.testing.assert_array_equal(flipped, pixels[4:12, 2:10][:, ::-1])
    assert render_views(pixels, [View(0, 0, 4, 4, False)] * 3, 8).shape == (3, 8, 8, 3)
    assert render_view(pixels, View(1, 1, 5, 7, False), 8).dtype == np.uint8
    box = View(1, 1, 5, 7, False)
    assert not np.array_equal(render_view(pixels, box, 8, "bilinear"), render_view(pixels, box, 8, "bicubic"))
    with pytest.raises(ValueError, match="interpolation"):
        render_view(pixels, box, 8, "nearest")


def test_full_logits_round_trip_exactly():
    logits = np.random.default_rng(0).normal(size=(4, 7)).astype(np.float32) * 5
    values, classes = compress_logits(logits, None)
    assert classes is None and values.dtype == np.float16
    np.testing.assert_array_equal(expand_logits(values, None, 7), logits.astype(np.float16).astype(np.float32))
    values, classes = compress_logits(logits, 7)  # k >= C is full logits too
    assert classes is None


def test_top_k_keeps_the_top_classes_and_the_mass_of_the_rest():
    logits = np.random.default_rng(1).normal(size=(5, 50)).astype(np.float32) * 3
    values, classes = compress_logits(logits, 5)
    assert values.shape == (5, 6) and classes.shape == (5, 5) and classes.dtype == np.int32
    restored = expand_logits(values, classes, 50)
    top = np.argsort(-logits, axis=1)[:, :5]
    np.testing.assert_array_equal(np.sort(classes, 1), np.sort(top, 1))
    np.testing.assert_allclose(np.take_along_axis(restored, top, 1), np.take_along_axis(logits, top, 1), atol=2e-2)

    def softmax(x):
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p, q = softmax(logits.astype(np.float64)), softmax(restored.astype(np.float64))
    np.testing.assert_allclose(np.take_along_axis(q, top, 1), np.take_along_axis(p, top, 1), atol=2e-2)
    rest = np.ones_like(p, bool)
    np.put_along_axis(rest, top, False, 1)
    np.testing.assert_allclose((q * rest).sum(1), (p * rest).sum(1), atol=2e-2)  # the tail's mass is kept
    others = restored[rest].reshape(5, 45)
    assert (others == others[:, :1]).all()  # spread evenly


def test_default_storage_is_full_logits_for_small_sets_and_top_k_for_large():
    assert stored_top_k(4, 7, None) is None              # PACS-sized: exact logits
    assert stored_top_k(8, 1000, None) is None           # ImageNet, K=8: 16 KB of float16 per image
    assert stored_top_k(16, 1000, None) == 10            # K=16: top 10
    assert stored_top_k(8, 1000, 5) == 5 and stored_top_k(4, 7, 7) is None


def test_bad_view_configs_are_refused():
    with pytest.raises(ValueError, match="scale"):
        ViewConfig(2, scale=(0.5, 0.2))
    with pytest.raises(ValueError, match=">= 0"):
        ViewConfig(-1)
