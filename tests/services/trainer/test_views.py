"""Stored views: epoch e trains on view e mod K with the teacher's stored logits on exactly those pixels."""
import numpy as np
import pytest
import torch

import services.trainer.loop as loop
from dad_core import create_teacher, get_preset
from services.sample_store import open_sample_set
from services.trainer.checkpointing import RunStore
from services.trainer.cli import main
from services.trainer.data import PairedSampleDataset, build_datasets, train_loader
from services.trainer.loop import train_worker
from services.trainer.data.views import StoredViewsDataset

CLASSES = ["tench", "goldfish", "tabby cat"]


def test_rebuilt_views_give_the_stored_logits_when_the_teacher_is_run_again(views_sample_set):
    """Decode the stored image, cut view k, run the same tiny teacher: the stored logits, within fp16."""
    rows = open_sample_set(views_sample_set.manifest, kinds=("clean", "adversarial"), accepted_only=False)
    preset = get_preset("tiny")
    teacher = create_teacher(preset.teacher, CLASSES)
    assert rows.num_views == 2
    clean = rows.record(0)
    assert clean["kind"] == "clean" and clean["view_image"] is not None  # cut from the stored 40 px copy
    for i in range(0, len(rows), 5):
        for v in range(2):
            view = rows.view(i, v)
            with torch.no_grad():
                again = teacher(view["image"][None])[0]
            torch.testing.assert_close(view["teacher_logits"], again, rtol=1e-3, atol=1e-3)


def test_epoch_e_shows_view_e_mod_k_of_every_image_and_its_partner(train_config, views_sample_set):
    cfg = train_config(samples=views_sample_set.manifest, objective="dad", loader_workers=2)  # persistent workers
    data = build_datasets(cfg)
    assert isinstance(data.train, StoredViewsDataset) and data.train.num_views == 2
    rows = data.train.rows
    loader = train_loader(cfg, data.train, 0, 1)
    seen_adv = 0
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)
        order = list(loader.sampler)
        assert {e for _, e in order} == {epoch}
        for k, e in order[:6]:
            ex = data.train[(k, e)]
            c, a = (int(x) for x in data.train.pairs[k])
            assert ex["view"] == epoch % 2
            rec = rows.record(c)
            np.testing.assert_array_equal(ex["teacher_logits"].numpy(),
                                          np.asarray(rec["view_logits"][epoch % 2], np.float16).astype(np.float32))
            assert torch.equal(ex["image"], rows.view(c, epoch % 2)["image"])
            if ex["has_adv"]:
                seen_adv += 1
                np.testing.assert_array_equal(
                    ex["adv_teacher_logits"].numpy(),
                    np.asarray(rows.record(a)["view_logits"][epoch % 2], np.float16).astype(np.float32))
        batches = list(loader)  # through persistent DataLoader workers: the epoch travels with each index
        first = data.train[order[0]]
        assert torch.equal(batches[0].images[0], first["image"])
        assert torch.equal(batches[0].teacher_logits[0], first["teacher_logits"])
    assert seen_adv > 0
    assert not torch.equal(data.train[(0, 0)]["image"], data.train[(0, 1)]["image"])  # two different views


def test_views_0_trains_on_the_stored_images_of_the_same_set(train_config, views_sample_set):
    data = build_datasets(train_config(samples=views_sample_set.manifest, views=0))
    assert type(data.train) is PairedSampleDataset
    online = build_datasets(train_config(samples=views_sample_set.manifest, teacher_logits="online", objective="kd"))
    assert type(online.train) is PairedSampleDataset  # an online teacher augments its own way by default


def test_more_views_than_stored_exits_2_naming_the_set(views_sample_set, tmp_path, capsys):
    code = main(["--source", str(views_sample_set.source), "--samples", views_sample_set.manifest,
                 "--out", str(tmp_path / "run"), "--preset", "tiny", "--student", "test_resnet", "--views", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "stores 2 views per image, 3 asked for" in err and views_sample_set.manifest in err


def test_views_on_a_set_without_them_exits_2_naming_the_set(sample_set, tmp_path, capsys):
    code = main(["--source", str(sample_set.source), "--samples", sample_set.manifest, "--out", str(tmp_path / "run"),
                 "--preset", "tiny", "--student", "test_resnet", "--views", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "has no stored views" in err and sample_set.manifest in err
    assert not (tmp_path / "run" / "train_config.json").exists()


def test_dad_on_stored_views_builds_no_teacher_and_a_killed_run_resumes_exactly(train_config, tmp_path, monkeypatch,
                                                                                views_sample_set):
    def no_teacher(*args, **kwargs):
        raise AssertionError("stored views must not need a teacher in memory")

    monkeypatch.setattr(loop, "create_teacher", no_teacher)
    make = lambda out: train_config(samples=views_sample_set.manifest, objective="dad", epochs=2,  # noqa: E731
                                    out=str(tmp_path / out), seed=5)
    train_worker(make("straight"))

    real_epoch = loop.train_one_epoch
    views_per_epoch = []

    def killed_in_second_epoch(*args, **kwargs):
        if args[8] == 1:
            raise KeyboardInterrupt("killed")
        return real_epoch(*args, **kwargs)

    def recording(*args, **kwargs):
        views_per_epoch.append((args[8], args[1].sampler.epoch))
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", killed_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_worker(make("killed"))
    assert RunStore(str(tmp_path / "killed")).latest()["epoch"] == 1
    monkeypatch.setattr(loop, "train_one_epoch", recording)
    train_worker(make("killed"))
    assert views_per_epoch == [(1, 1)]  # the resumed run trains epoch 1 only, on view 1 mod 2
    a, b = torch.load(tmp_path / "straight" / "model.pth"), torch.load(tmp_path / "killed" / "model.pth")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_a_partner_without_stored_views_trains_as_stored(train_config, views_sample_set):
    data = build_datasets(train_config(samples=views_sample_set.manifest, objective="dad"))
    rows = data.train.rows
    rows.manifest.config.views.kinds = ["clean"]  # as if made without --adversarial-views
    only_clean = StoredViewsDataset(PairedSampleDataset(rows, data.train.pairs, True, True), 2)
    k = next(k for k in range(len(only_clean)) if only_clean.pairs[k, 1] >= 0)
    ex, stored = only_clean[(k, 1)], rows[int(only_clean.pairs[k, 1])]
    assert ex["view"] == 1 and torch.equal(ex["adv_teacher_logits"], stored["teacher_logits"])
    assert torch.equal(ex["adv_image"], stored["image"])


def test_q_of_x_partners_of_the_no_attack_control_train_as_stored(train_config, views_sample_set):
    data = build_datasets(train_config(samples=views_sample_set.manifest, objective="dad",
                                       adversarial_rows="discretized"))
    assert isinstance(data.train, StoredViewsDataset)
    k = next(k for k in range(len(data.train)) if data.train.pairs[k, 1] >= 0)
    a = int(data.train.pairs[k, 1])
    ex, stored = data.train[(k, 1)], data.train.rows[a]
    assert stored["kind"] == "discretized" and not data.train.partner_views[k]
    assert torch.equal(ex["adv_teacher_logits"], stored["teacher_logits"]) and ex["view"] == 1
