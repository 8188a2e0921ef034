"""The generator on a local Ray: bad input counted not fatal, exactly-once resume, S3, progress, failures."""
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from schemas import sample_store as ss
from services.generator import GeneratorConfig, run_generation
from services.generator.pipeline import GenerationError, prepare_job
from services.sample_store import open_sample_set, to_ray_dataset, verify_sample_set
from services.source import SourceError
from services.storage import StorageError


def test_every_bad_input_is_converted_or_counted_with_its_reason(tiny_sample_set):
    _, result, _ = tiny_sample_set
    stats = result.manifest.statistics
    assert stats.seen == 22 and stats.clean == 17
    assert stats.errored.reasons == {"corrupt": 1, "truncated": 1, "empty_file": 1, "too_large": 1, "unreadable": 1}
    assert stats.errored.examples["corrupt"] == ["n01440764/corrupt.jpg"]
    assert stats.converted.reasons == {"CMYK": 1, "L": 1, "I;16": 1, "P": 1, "RGBA": 1}
    assert stats.large.reasons == {"over_10000_pixels": 1} and stats.large.examples == {
        "over_10000_pixels": ["n01443537/gray.png"]}  # decoded (within max_pixels) but counted
    assert stats.skipped.reasons == {"not_an_image": 1, "non_utf8_name": 1}
    assert stats.skipped.examples["non_utf8_name"] == ["n01440764/caf\\xe9.jpg"]  # shown escaped
    assert stats.accepted + stats.rejected.total == stats.clean
    assert result.manifest.config.class_names == ["tench", "goldfish", "tabby cat"]


def test_published_set_verifies_and_has_three_rows_per_decoded_image(tiny_sample_set):
    _, result, _ = tiny_sample_set
    manifest = verify_sample_set(result.manifest_uri)  # checksums, row counts, unique sample_ids
    assert [s.index for s in manifest.shards] == list(range(5))
    assert manifest.num_rows == 3 * manifest.statistics.clean  # x, Q(x), Q(x')
    assert manifest.config.teacher.checksum and manifest.config.discretizer.checksum
    assert manifest.code_version.libraries["torch"] and manifest.timings.stage_s.keys() >= {"read", "generate", "write"}
    assert manifest.source.num_items == 22 and manifest.source.format == "imagefolder"


def test_every_adversarial_row_has_diagnostics_and_the_manifest_their_aggregates(tiny_sample_set):

    from schemas.perturbation import DIAGNOSTIC_NAMES

    _, result, _ = tiny_sample_set
    manifest = verify_sample_set(result.manifest_uri)
    rows = pq.read_table(result.set_uri + "/shards").to_pylist()
    diag = [r["perturbation"] for r in rows if r["kind"] == "adversarial"]
    assert len(diag) == manifest.statistics.clean and all(d is not None for d in diag)
    assert all(r["perturbation"] is None for r in rows if r["kind"] != "adversarial")
    summary = manifest.statistics.perturbation.summary()
    for name in DIAGNOSTIC_NAMES:  # the manifest's means are the rows' means (NaN: not measured)
        measured = [d[name] for d in diag if not np.isnan(d[name])]
        assert summary.metrics[name].n == len(measured)
        assert summary.metrics[name].mean == pytest.approx(np.mean(measured), rel=1e-4, abs=1e-6)
    # the tiny Q has codes: every row has them; Q(Q(x)) is made for the first item of each batch (of 4) only
    assert summary.metrics["codes_vs_qx"].n == len(diag)
    assert 0 < summary.metrics["l2_vs_qqx"].n == summary.metrics["codes_vs_qqx"].n < len(diag)
    assert 0 < summary.metrics["delta_l2"].mean <= 0.1 + 1e-5  # App. C's L2 ball of 0.1
    assert set(summary.per_class) <= {0, 1, 2} and manifest.timings.stage_s["diagnose"] > 0
    assert manifest.config.requantize_every == 16  # recorded: which rows have the Q(Q(x)) measures


def test_status_object_reports_progress_and_the_final_state(tiny_sample_set):
    config, result, statuses = tiny_sample_set
    assert statuses[-1].state == "succeeded" and statuses[-1].manifest_uri == result.manifest_uri
    assert statuses[-1].done_items == 22 and statuses[-1].errored == 5 and statuses[-1].committed_shards == 5
    assert statuses[-1].samples_per_s > 0 and 0 <= statuses[-1].acceptance_rate <= 1
    on_disk = json.loads((Path(result.set_uri.removeprefix("file://")) / ss.STATUS_NAME).read_text())
    assert on_disk["state"] == "succeeded" and on_disk["eta_s"] == 0.0


def test_readers_select_training_rows_and_pair_images(tiny_sample_set):
    _, result, _ = tiny_sample_set
    stats = result.manifest.statistics
    everything = open_sample_set(result.manifest_uri, kinds=ss.KINDS, accepted_only=False)
    pairs = open_sample_set(result.manifest_uri, accepted_only=False)  # default: training kinds, x and Q(x')
    training = open_sample_set(result.manifest_uri)
    adversarial = open_sample_set(result.manifest_uri, kinds=(ss.KIND_ADVERSARIAL,))
    assert len(everything) == 3 * stats.clean and len(pairs) == 2 * stats.clean
    assert len(training) == stats.clean + stats.accepted and len(adversarial) == stats.accepted
    assert [everything[i]["kind"] for i in range(3)] == ["clean", "discretized", "adversarial"]
    item = pairs[1]
    assert item["kind"] == "adversarial" and item["image"].shape == (3, 32, 32)
    assert item["teacher_logits"].shape == (3,) and 0 <= float(item["image"].min()) <= float(item["image"].max()) <= 1
    assert item["source_id"] == pairs[0]["source_id"] == everything[1]["source_id"]  # an item's rows sit together
    assert all(adversarial[i]["accepted"] for i in range(len(adversarial)))
    rows = to_ray_dataset(result.manifest_uri, kinds=(ss.KIND_ADVERSARIAL,), accepted_only=False,
                          columns=[ss.COL_SAMPLE_ID]).take_all()
    assert len(rows) == stats.clean
    rows = to_ray_dataset(result.manifest_uri, columns=[ss.COL_KIND]).take_all()  # clean rows hold accepted=null
    assert len(rows) == stats.clean + stats.accepted
    shard = pq.read_schema(Path(result.set_uri.removeprefix("file://")) / result.manifest.shards[0].path)
    assert ss.class_names_of(shard) == result.manifest.config.class_names  # format v2: names in the schema


def test_rerunning_a_finished_set_changes_nothing(tiny_sample_set):
    config, result, _ = tiny_sample_set
    root = Path(result.set_uri.removeprefix("file://"))
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")}
    again = run_generation(config)
    assert again.manifest == result.manifest and again.resumed_shards == 5
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")} == before


def test_killed_actor_loses_no_sample(ray_local, tiny_image_folder, tmp_path):
    config = GeneratorConfig(source=str(tiny_image_folder), out=str(tmp_path), shard_size=3, batch_size=2,
                             overrides={"attack.steps": 10},  # slow enough that the kill lands mid-run
                             cpus_per_actor=0.5, progress_bar=False, status_interval_s=0.2)
    killed = []

    def kill_an_actor_once(status):
        if status.done_items > 0 and not killed:
            name = next(n for n in ray_local.util.list_named_actors() if n.startswith("dad-generator-"))
            ray_local.kill(ray_local.get_actor(name), no_restart=False)  # Ray restarts it and re-runs its calls
            killed.append(name)

    result = run_generation(config, on_progress=kill_an_actor_once)
    assert killed
    manifest = verify_sample_set(result.manifest_uri)
    ids = open_sample_set(result.manifest_uri, accepted_only=False).index[ss.COL_SOURCE_ID].to_pylist()
    assert sorted(set(ids)) == sorted(f"{c}/img_{i:03d}.jpg" for c in ("n01440764", "n01443537", "n02123045")
                                      for i in range(4))
    assert manifest.num_rows == 36 and manifest.statistics.clean == 12  # x, Q(x), Q(x') each


def test_source_and_store_on_s3(ray_local, s3_server, tiny_image_folder):
    import s3fs

    _, options = s3_server
    fs = s3fs.S3FileSystem(**options)
    fs.put(str(tiny_image_folder), "dad-test/src", recursive=True)
    config = GeneratorConfig(source="s3://dad-test/src", out="s3://dad-test/store", shard_size=6, batch_size=4,
                             cpus_per_actor=0.5, storage_options=options, progress_bar=False)
    result = run_generation(config)
    assert result.manifest_uri.startswith("s3://dad-test/store/")
    manifest = verify_sample_set(result.manifest_uri, storage_options=options)
    assert manifest.statistics.clean == 12 and len(manifest.shards) == 2
    ds = open_sample_set(result.manifest_uri, accepted_only=False, storage_options=options)
    assert len(ds) == 24 and ds[3]["image"].shape == (3, 32, 32)
    assert fs.exists(result.set_uri.removeprefix("s3://") + "/_status.json")
    assert to_ray_dataset(result.manifest_uri, accepted_only=False, storage_options=options).count() == 24


def test_unwritable_output_fails_before_any_work(tiny_image_folder, tmp_path, s3_server):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(StorageError, match="a_file/store"):
        prepare_job(GeneratorConfig(source=str(tiny_image_folder), out=str(tmp_path / "a_file" / "store")))
    with pytest.raises(StorageError, match="s3://no-such-bucket"):
        prepare_job(GeneratorConfig(source=str(tiny_image_folder), out="s3://no-such-bucket/store",
                                    storage_options=s3_server[1]))


def test_source_without_a_readable_image_fails_at_once(ray_local, tmp_path):
    for i in range(3):
        (tmp_path / "src" / "cls").mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / "cls" / f"{i}.jpg").write_bytes(b"garbage")
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="no readable image"):
        run_generation(GeneratorConfig(source=str(tmp_path / "src"), out=str(tmp_path / "out"), progress_bar=False))
    assert time.monotonic() - t0 < 10


def test_resuming_with_a_different_config_is_refused(ray_local, tiny_sample_set):
    config, result, _ = tiny_sample_set
    other = GeneratorConfig(**{**config.__dict__, "name": result.manifest.name, "overrides": {"attack.steps": 2}})
    with pytest.raises(GenerationError, match="different sample set"):
        run_generation(other)


def test_an_unfinished_format_v1_set_is_not_resumed_by_v2_code():
    from datetime import datetime, timezone

    from schemas.manifest import ModelInfo, SampleSetConfig, SampleSetPlan, SourceFingerprint, Statistics
    from services.generator.plan import check_same_plan

    model = ModelInfo(kind="k", name="n", weights=None, checksum="c" * 64)
    plan = SampleSetPlan(name="s", num_shards=1, listing=Statistics(), started_at=datetime.now(timezone.utc),
                         config=SampleSetConfig(preset="tiny", preset_config={}, fingerprint="f", teacher=model,
                                                discretizer=model, attack={}, seed=0, image_size=8, shard_size=3,
                                                batch_size=3, class_ids=["a"], class_names=["a"]),
                         source=SourceFingerprint(uri="/s", format="imagefolder", num_items=3, num_classes=1,
                                                  sha256="0" * 64))
    check_same_plan(plan, plan, "file:///s")
    with pytest.raises(GenerationError, match="different store format version"):
        check_same_plan(plan.model_copy(update={"format_version": 1}), plan, "file:///s")


def test_a_failed_write_task_is_reported_on_one_line_naming_the_store_and_the_fix():
    """Not Ray's coloured remote traceback: the task's own error, the store, and what to do (a full disk)."""
    import ray

    from services.generator.scheduler import task_error

    full = OSError(28, "No space left on device", "/mnt/store/set/shards/shard-000007-abc.parquet")
    e = ray.exceptions.RayTaskError("write_shard", "Traceback (most recent call last):\n  ...", full)
    text = task_error(e, "file:///mnt/store/set")
    assert "\n" not in text and "Traceback" not in text and "\x1b[" not in text
    assert "/mnt/store/set/shards/shard-000007-abc.parquet" in text and "(store file:///mnt/store/set)" in text
    assert "filesystem is full" in text and "re-run" in text
    lost = ray.exceptions.WorkerCrashedError()
    assert task_error(lost, "file:///mnt/store/set") == str(lost)  # Ray's own failures as Ray words them
