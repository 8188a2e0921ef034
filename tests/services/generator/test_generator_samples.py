"""Per-batch generation: what is stored is exactly what the teacher judged."""
import numpy as np
import pytest
import torch

from dad_core import create_discretizer, create_teacher, get_preset, judge
from services.generator.samples import DecodedBatch, batch_seed, generate_samples
from services.sample_store.rows import build_rows, decode_png

CLASSES = ["tench", "goldfish", "tabby cat"]


@pytest.fixture(scope="module")
def models():
    preset = get_preset("tiny")
    return preset, create_teacher(preset.teacher, CLASSES), create_discretizer(preset.discretizer)


def decoded_batch(n=6, size=32):
    rng = np.random.default_rng(0)
    images = np.repeat(np.repeat(rng.integers(0, 256, (n, size // 4, size // 4, 3), dtype=np.uint8), 4, 1), 4, 2)
    return DecodedBatch(0, 0, [f"c/{i}.jpg" for i in range(n)], [f"file:///c/{i}.jpg" for i in range(n)],
                        np.arange(n, dtype=np.int64) % 3, images)


def test_stored_logits_are_the_teachers_on_the_decoded_stored_images(models):
    preset, teacher, q = models
    batch = decoded_batch()
    sample, stats = generate_samples(teacher, q, batch, preset.attack, seed=batch_seed(0, 0, 0))
    rows = build_rows("fp", [sample]).to_pylist()
    labels = torch.tensor(batch.labels)
    for kind, offset in (("clean", 0), ("discretized", 1), ("adversarial", 2)):  # rows: x, Q(x), Q(x') per item
        mine = rows[offset::3]
        assert {r["kind"] for r in mine} == {kind}
        pixels = np.stack([decode_png(r["image"]["bytes"]) for r in mine])      # (B, S, S, 3)
        verdict = judge(teacher, torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255, labels)
        stored = np.stack([np.asarray(r["teacher_logits"], np.float16) for r in mine])
        np.testing.assert_array_equal(stored, verdict.logits.numpy().astype(np.float16), err_msg=kind)
        assert [r["teacher_prediction"] for r in mine] == verdict.prediction.tolist()
        if kind == "adversarial":
            assert [r["accepted"] for r in mine] == verdict.correct.tolist()
        else:  # format v2: accepted is the Q(x') verdict, null on x and Q(x)
            assert [r["accepted"] for r in mine] == [None] * len(mine)
    np.testing.assert_array_equal(np.stack([decode_png(r["image"]["bytes"]) for r in rows[0::3]]), batch.images)
    with torch.no_grad():  # the Q(x) rows hold the discretizer's output on the clean image, rounded to uint8
        q_x = q(torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 255)
    np.testing.assert_array_equal(np.stack([decode_png(r["image"]["bytes"]) for r in rows[1::3]]),
                                  q_x.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy())
    assert stats.items == 6 and stats.accepted + sum(stats.rejected.values()) == 6
    assert set(stats.stage_s) == {"generate", "judge", "diagnose"}


def test_generation_is_deterministic_for_a_batch_seed(models):
    preset, teacher, q = models
    a, _ = generate_samples(teacher, q, decoded_batch(), preset.attack, seed=batch_seed(0, 3, 1))
    b, _ = generate_samples(teacher, q, decoded_batch(), preset.attack, seed=batch_seed(0, 3, 1))
    np.testing.assert_array_equal(a.adversarial, b.adversarial)
    assert batch_seed(0, 3, 1) != batch_seed(0, 1, 3) and batch_seed(1, 3, 1) != batch_seed(0, 3, 1)


def test_empty_batch_gives_no_rows(models):
    preset, teacher, q = models
    empty = DecodedBatch(0, 1, [], [], np.zeros(0, np.int64), np.zeros((0, 32, 32, 3), np.uint8))
    sample, stats = generate_samples(teacher, q, empty, preset.attack, seed=0)
    assert sample is None and stats.items == 0


def test_the_q_of_q_control_stores_q_applied_to_q_of_x(models):
    """attack.steps=0: Q(x') rows are Q(Q(x)), and the Q(x) rows are the Q(x) it was applied to (rounded)."""
    import dataclasses

    preset, teacher, q = models
    batch = decoded_batch()
    sample, _ = generate_samples(teacher, q, batch, dataclasses.replace(preset.attack, steps=0), seed=1)
    with torch.no_grad():
        q_x = q(torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 255)
        q_q_x = q(q_x)
        q_stored = q(torch.from_numpy(sample.discretized).permute(0, 3, 1, 2).float() / 255)
    as_stored = lambda t: t.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy()  # noqa: E731
    np.testing.assert_array_equal(sample.adversarial, as_stored(q_q_x))
    np.testing.assert_array_equal(sample.discretized, as_stored(q_x))
    # Q applied to the stored (uint8) Q(x) rows gives the same images up to that rounding
    diff = np.abs(sample.adversarial.astype(int) - as_stored(q_stored).astype(int))
    assert diff.mean() < 1.0
    d = sample.perturbation  # no delta; Q(x') is exactly Q(Q(x)) on every row
    assert (d["delta_l2"] == 0).all() and (d["same_vs_qqx"] == 1).all() and (d["codes_vs_qqx"] == 0).all()
    assert (d["same_vs_qx"] < 1).all()  # the second pass alone changes Q(x)


def test_the_random_delta_control_has_the_attacks_size_per_sample(models):
    import dataclasses

    preset, teacher, q = models
    batch = decoded_batch()
    dad, _ = generate_samples(teacher, q, batch, preset.attack, seed=3)
    rand, _ = generate_samples(teacher, q, batch, dataclasses.replace(preset.attack, delta="random"), seed=3)
    np.testing.assert_array_equal(dad.discretized, rand.discretized)
    a, r = dad.perturbation["delta_l2"], rand.perturbation["delta_l2"]
    assert (r <= a + 1e-5).all() and (r >= 0.9 * a).all()  # equal but for clipping to [0, 1]
    assert not np.array_equal(dad.adversarial, rand.adversarial)
