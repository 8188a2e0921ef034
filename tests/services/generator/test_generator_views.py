"""Stored views (`--views K`): the stored soft labels are the teacher's on exactly the pixels a trainer rebuilds."""
import numpy as np
import pytest
import torch

from dad_core import create_discretizer, create_teacher, get_preset
from dad_core.views import View, ViewConfig, draw_views, expand_logits, render_view
from schemas import sample_store as ss
from services.generator.samples import DecodedBatch, batch_seed, generate_samples
from services.generator.views import ViewJob, views_info
from services.sample_store.rows import build_rows, decode_png

CLASSES = ["tench", "goldfish", "tabby cat"]
FP = "e" * 64


@pytest.fixture(scope="module")
def models():
    preset = get_preset("tiny")
    return preset, create_teacher(preset.teacher, CLASSES), create_discretizer(preset.discretizer)


def decoded_batch(n=4, size=32, view_size=None):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    larger = None if view_size is None else rng.integers(0, 256, (n, view_size, view_size, 3), dtype=np.uint8)
    return DecodedBatch(0, 0, [f"c/{i}.jpg" for i in range(n)], [f"file:///c/{i}.jpg" for i in range(n)],
                        np.arange(n, dtype=np.int64) % 3, images, larger)


def view_job(count=3, top_k=None, adversarial=True, source_size=None):
    return ViewJob(views_info(count, 32, len(CLASSES), source_size, top_k, 0.08, adversarial), FP, 7, 32)


def rebuilt_logits(teacher, row, v):
    """Decode the stored image, cut view v as stored, run the teacher: what a trainer with a teacher would see."""
    source = row[ss.COL_VIEW_IMAGE] or row[ss.COL_IMAGE]
    box = row[ss.COL_VIEWS][v]
    pixels = render_view(decode_png(source["bytes"]), View(*box[:4], bool(box[4])), 32)
    with torch.no_grad():
        return teacher(torch.from_numpy(pixels)[None].permute(0, 3, 1, 2).float() / 255)[0].numpy()


def test_stored_view_logits_are_the_teachers_on_the_rebuilt_view_pixels(models):
    preset, teacher, q = models
    job = view_job()
    sample, stats = generate_samples(teacher, q, decoded_batch(), preset.attack, batch_seed(0, 0, 0), views=job)
    rows = build_rows(FP, [sample]).to_pylist()
    assert "views" in stats.stage_s
    for kind in (ss.KIND_CLEAN, ss.KIND_ADVERSARIAL):
        for row in (r for r in rows if r[ss.COL_KIND] == kind):
            expected = draw_views(ViewConfig(3), 7, ss.sample_id(FP, row[ss.COL_SOURCE_ID], kind), 32, 32)
            assert [tuple(b) for b in row[ss.COL_VIEWS]] == [(*v.as_tuple()[:4], int(v.flip)) for v in expected]
            assert row[ss.COL_VIEW_CLASSES] is None and row[ss.COL_VIEW_IMAGE] is None
            for v in range(3):
                stored = np.asarray(row[ss.COL_VIEW_LOGITS][v], np.float16)
                np.testing.assert_allclose(stored.astype(np.float32), rebuilt_logits(teacher, row, v),
                                           rtol=1e-3, atol=1e-3)  # fp16 rounding of the stored values
    discretized = [r for r in rows if r[ss.COL_KIND] == ss.KIND_DISCRETIZED]
    assert discretized and all(r[ss.COL_VIEWS] is None for r in discretized)


def test_adversarial_views_are_optional(models):
    preset, teacher, q = models
    sample, _ = generate_samples(teacher, q, decoded_batch(), preset.attack, 0, views=view_job(adversarial=False))
    rows = build_rows(FP, [sample]).to_pylist()
    assert all((r[ss.COL_VIEWS] is not None) == (r[ss.COL_KIND] == ss.KIND_CLEAN) for r in rows)


def test_top_k_soft_labels_keep_the_teachers_top_classes(models):
    preset, teacher, q = models
    sample, _ = generate_samples(teacher, q, decoded_batch(), preset.attack, 0, views=view_job(top_k=2))
    row = build_rows(FP, [sample]).to_pylist()[0]
    assert len(row[ss.COL_VIEW_CLASSES]) == 3 and len(row[ss.COL_VIEW_LOGITS][0]) == 3  # 2 logits + the fill
    for v in range(3):
        full = rebuilt_logits(teacher, row, v)
        classes = np.asarray([row[ss.COL_VIEW_CLASSES][v]])
        restored = expand_logits(np.asarray([row[ss.COL_VIEW_LOGITS][v]], np.float16), classes, 3)[0]
        assert set(classes[0]) == set(np.argsort(-full)[:2])
        np.testing.assert_allclose(restored[classes[0]], full[classes[0]], rtol=1e-3, atol=1e-3)


def test_views_are_cut_from_the_larger_stored_copy_when_there_is_one(models):
    preset, teacher, q = models
    job = view_job(source_size=48)
    sample, _ = generate_samples(teacher, q, decoded_batch(view_size=48), preset.attack, 0, views=job)
    rows = build_rows(FP, [sample]).to_pylist()
    clean = rows[0]
    np.testing.assert_array_equal(decode_png(clean[ss.COL_VIEW_IMAGE]["bytes"]), decoded_batch(view_size=48).view_images[0])
    assert decode_png(clean[ss.COL_IMAGE]["bytes"]).shape == (32, 32, 3)  # the clean row itself is unchanged
    assert max(b[0] + b[2] for b in clean[ss.COL_VIEWS]) > 32 or max(b[1] + b[3] for b in clean[ss.COL_VIEWS]) > 32
    for v in range(3):
        np.testing.assert_allclose(np.asarray(clean[ss.COL_VIEW_LOGITS][v], np.float32), rebuilt_logits(teacher, clean, v),
                                   rtol=1e-3, atol=1e-3)
    adversarial = rows[2]  # Q(x') views are cut from the stored Q(x') itself
    assert adversarial[ss.COL_VIEW_IMAGE] is None and max(b[0] + b[2] for b in adversarial[ss.COL_VIEWS]) <= 32


@pytest.mark.parametrize("flags, message", [
    (["--view-top-k", "5"], "--view-top-k: applies to views only"),
    (["--adversarial-views"], "--adversarial-views: applies to views only"),
    (["--views", "2", "--view-image-size", "16"], "view_image_size 16 is smaller than the preset's image size 32"),
    (["--views", "65"], "--views"),
])
def test_bad_view_options_exit_2_naming_the_option(tiny_image_folder, tmp_path, capsys, flags, message):
    from services.generator.cli import main

    assert main(["--source", str(tiny_image_folder), "--out", str(tmp_path), "--no-progress", *flags]) == 2
    assert message in capsys.readouterr().err


def test_the_set_fingerprint_and_manifest_record_the_views(tiny_image_folder, tmp_path):
    from services.generator import GeneratorConfig, prepare_job
    from services.generator.plan import build_plan

    plain = prepare_job(GeneratorConfig(source=str(tiny_image_folder), out=str(tmp_path)))
    views = prepare_job(GeneratorConfig(source=str(tiny_image_folder), out=str(tmp_path), views=4, view_top_k=2))
    assert plain.views is None and plain.set_fingerprint != views.set_fingerprint and plain.name != views.name
    info = build_plan(views, {"teacher": "t", "discretizer": "d"}).config.views
    assert (info.count, info.top_k, info.source_size, info.kinds) == (4, 2, 32, ["clean"])
    assert build_plan(plain, {"teacher": "t", "discretizer": "d"}).config.views is None


def test_read_tasks_decode_the_larger_copy_views_are_cut_from(tiny_image_folder):
    import dataclasses

    from services.generator.tasks import read_shard
    from services.source import ReadSpec, list_source
    from services.source.decode import decode_image

    listing = list_source(str(tiny_image_folder))
    spec = dataclasses.replace(ReadSpec.for_listing(listing, 32), view_image_size=48)
    *batches, report = read_shard(spec, 0, listing.items[:5], 4)
    assert [b.view_images.shape for b in batches] == [(4, 48, 48, 3), (1, 48, 48, 3)] and report.seen == 5
    expected = decode_image(open(listing.items[0].path, "rb").read(), 48).pixels
    np.testing.assert_array_equal(batches[0].view_images[0], expected)
    assert batches[0].images.shape == (4, 32, 32, 3)
    plain, _ = read_shard(ReadSpec.for_listing(listing, 32), 0, listing.items[:2], 4)
    assert plain.view_images is None
