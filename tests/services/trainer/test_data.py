import numpy as np
import pytest
import torch

from services.trainer.data import (
    PairedSampleDataset, block_shuffle, build_datasets, collate_examples, holdout_mask, pair_rows,
)


def test_pair_rows_pairs_each_clean_row_with_its_accepted_adversarial_row():
    kinds = ["clean", "adversarial", "clean", "clean", "adversarial"]
    ids = ["a", "a", "b", "c", "c"]
    assert pair_rows(kinds, ids).tolist() == [[0, 1], [2, -1], [3, 4]]  # b's Q(x') was rejected


def test_holdout_is_deterministic_and_leaves_training_data():
    ids = [f"class/{i}.jpg" for i in range(100)]
    mask = holdout_mask(ids, 0.1)
    assert mask.sum() == 10 and (holdout_mask(list(reversed(ids)), 0.1)[::-1] == mask).all()
    assert holdout_mask(ids[:3], 0.01).sum() == 1 and not holdout_mask(ids, 0.0).any()


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_block_shuffle_gives_every_rank_equal_counts_covering_every_example(world_size):
    blocks = np.repeat(np.arange(10), 7)  # 70 examples in 10 row groups
    per_rank = [block_shuffle(blocks, seed=0, epoch=1, rank=r, world_size=world_size, window=2)
                for r in range(world_size)]
    assert len({len(p) for p in per_rank}) == 1
    assert set(np.concatenate(per_rank).tolist()) == set(range(70))
    assert not (per_rank[0] == block_shuffle(blocks, seed=0, epoch=2, rank=0, world_size=world_size, window=2)).all()
    if world_size == 2:  # contiguous slices: ranks share at most the one block at the cut
        assert len(set(blocks[per_rank[0]]) & set(blocks[per_rank[1]])) <= 1


def test_collate_keeps_partners_aligned_and_zero_fills_missing_ones():
    img = lambda v: torch.full((3, 4, 4), v, dtype=torch.uint8)  # noqa: E731
    logits = lambda v: torch.full((3,), float(v))  # noqa: E731
    batch = collate_examples([
        {"image": img(1), "label": 0, "teacher_logits": logits(1), "has_adv": True, "adv_image": img(2),
         "adv_teacher_logits": logits(2)},
        {"image": img(3), "label": 2, "teacher_logits": logits(3), "has_adv": False},
    ])
    assert batch.has_adv.tolist() == [True, False]
    assert batch.adv_images[0].eq(2).all() and batch.adv_images[1].eq(0).all()
    assert batch.adv_teacher_logits[:, 0].tolist() == [2.0, 0.0] and batch.labels.dtype == torch.int64


def test_sample_set_examples_carry_stored_logits_and_their_own_partner(train_config, sample_set):
    from services.sample_store import open_sample_set

    data = build_datasets(train_config())
    assert isinstance(data.train, PairedSampleDataset) and data.image_size == 32
    assert len(data.train) + len(data.val) == 18 and data.class_names == ["tench", "goldfish", "tabby cat"]
    rows = open_sample_set(sample_set.manifest, accepted_only=False)
    by_id = {}
    for i in range(len(rows)):
        r = rows[i]
        by_id[(r["source_id"], r["kind"])] = r
    paired = 0
    for k in range(len(data.train)):
        ex = data.train[k]
        sid = data.train.rows.index["source_id"][int(data.train.pairs[k, 0])].as_py()
        clean, adv = by_id[(sid, "clean")], by_id[(sid, "adversarial")]
        assert ex["image"].dtype == torch.uint8 and ex["label"] == clean["label"]
        assert torch.equal(ex["teacher_logits"], clean["teacher_logits"])
        assert ex["has_adv"] == adv["accepted"]
        if ex["has_adv"]:
            paired += 1
            assert torch.equal(ex["adv_teacher_logits"], adv["teacher_logits"])
            assert torch.equal(ex["adv_image"].float() / 255, adv["image"])
    assert paired > 0 and data.num_unpaired == len(data.train) - paired


def test_without_a_sample_set_images_come_from_the_source(train_config):
    data = build_datasets(train_config(objective="ce", samples=None))
    ex = data.train[0]
    assert ex["image"].shape == (3, 32, 32) and "teacher_logits" not in ex and "has_adv" not in ex


def test_pair_rows_pairs_a_partner_kind_under_a_filter():
    """The controls: Q(x) rows as partners (no attack), kept only where the teacher is right on them."""
    kinds = ["clean", "discretized", "clean", "discretized", "clean"]
    ids = ["a", "a", "b", "b", "c"]
    assert pair_rows(kinds, ids, partner="discretized").tolist() == [[0, 1], [2, 3], [4, -1]]
    assert pair_rows(kinds, ids, "discretized", keep=[True, False, True, True, True]).tolist() == [[0, -1], [2, 3], [4, -1]]


@pytest.mark.parametrize("rows", ["all", "discretized"])
def test_control_rows_pair_each_x_with_the_chosen_partner(train_config, sample_set, rows):
    """adversarial_rows=all: every Q(x') (rejected ones too); discretized: Q(x) where the teacher is right on it."""
    from services.sample_store import open_sample_set

    data = build_datasets(train_config(adversarial_rows=rows, val_fraction=0.0))
    stored = open_sample_set(sample_set.manifest, kinds=("clean", "discretized", "adversarial"), accepted_only=False)
    by_id = {(stored[i]["source_id"], stored[i]["kind"]): stored[i] for i in range(len(stored))}
    kind = "adversarial" if rows == "all" else "discretized"
    expected = 0
    for k in range(len(data.train)):
        ex = data.train[k]
        sid = data.train.rows.index["source_id"][int(data.train.pairs[k, 0])].as_py()
        partner = by_id[(sid, kind)]
        wanted = True if rows == "all" else partner["teacher_prediction"] == partner["label"]
        assert ex["has_adv"] == wanted
        if wanted:
            expected += 1
            assert torch.equal(ex["adv_teacher_logits"], partner["teacher_logits"])
            assert torch.equal(ex["adv_image"].float() / 255, partner["image"])
    assert data.num_unpaired == len(data.train) - expected


def test_random_resized_crop_keeps_the_size_and_changes_the_view(train_config):
    from PIL import Image

    from services.trainer.data import build_transform

    tf = build_transform(train_config(objective="ce", samples=None, random_resized_crop=0.2), train=True)
    img = Image.fromarray(np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3))
    views = [tf(img) for _ in range(4)]
    assert all(v.shape == (3, 32, 32) and v.dtype == torch.uint8 for v in views)
    assert any(not torch.equal(views[0], v) for v in views[1:])
    assert torch.equal(build_transform(train_config(objective="ce", samples=None), train=True)(img),
                       torch.from_numpy(np.array(img)).permute(2, 0, 1))


def test_count_matched_keeps_per_class_as_many_q_of_x_prime_as_accepted_drawn_from_all():
    from services.trainer.data import count_matched

    rng = np.random.default_rng(0)
    n = 300
    labels = np.repeat(rng.integers(0, 4, n), 2)                     # clean row, then its Q(x') row
    kinds = ["clean", "adversarial"] * n
    accepted = [None if k == "clean" else bool(a) for k, a in zip(kinds, np.repeat(rng.random(n) < 0.3, 2))]
    ids = [f"img{i // 2}" for i in range(2 * n)]
    keep = count_matched(kinds, labels, accepted, ids, seed=0)
    assert not keep[0::2].any()                                      # only Q(x') rows are chosen
    for c in range(4):
        wanted = sum(1 for a, lab in zip(accepted, labels) if a and lab == c)
        assert keep[1::2][labels[1::2] == c].sum() == wanted         # the accepted set's size, per class
    chosen = keep & np.array([a is False for a in accepted])
    assert chosen.sum() > 0.5 * keep.sum()                           # drawn from all: mostly rejected ones at 30%
    assert np.array_equal(keep, count_matched(kinds, labels, accepted, ids, seed=0))
    assert not np.array_equal(keep, count_matched(kinds, labels, accepted, ids, seed=1))


def test_count_matched_rows_pair_as_many_q_of_x_prime_as_the_filter_per_class(train_config, sample_set):
    accepted = build_datasets(train_config(adversarial_rows="accepted", val_fraction=0.0)).train
    matched = build_datasets(train_config(adversarial_rows="count-matched", val_fraction=0.0)).train

    def per_class(data):
        labels = data.rows.index["label"].to_numpy()
        paired = data.pairs[data.pairs[:, 1] >= 0]
        return np.bincount(labels[paired[:, 1]], minlength=8).tolist()

    assert per_class(matched) == per_class(accepted) and len(matched) == len(accepted)
