"""The chaos rehearsal: its fault plan, its faulty S3 proxy, and a short rehearsal of generation under faults.

The full rehearsal (10,000 images, training, a full disk) is `make chaos`; this is its short version.
"""
from __future__ import annotations

import os

import pytest

from services.chaos.faults import GENERATE_KINDS, plan_faults
from services.chaos.proxy import FaultyProxy
from services.chaos.rehearsal import ChaosConfig


def test_the_fault_plan_is_seeded_and_tries_every_kind():
    plan = plan_faults(GENERATE_KINDS, 7, seed=3)
    assert plan == plan_faults(GENERATE_KINDS, 7, seed=3) and plan != plan_faults(GENERATE_KINDS, 7, seed=4)
    assert {f.kind for f in plan} == set(GENERATE_KINDS) and len(plan) == 7
    assert [f.kind for f in plan_faults(GENERATE_KINDS, 5, seed=3, ordered=True)] == list(GENERATE_KINDS)
    with pytest.raises(ValueError, match="unknown fault kinds"):
        plan_faults(("actor_kil",), 1, seed=0)
    thresholds = [f.threshold for f in plan]
    assert thresholds == sorted(thresholds) and 0 < thresholds[0] and thresholds[-1] <= 0.85


def test_bad_settings_are_refused_naming_the_field(tmp_path):
    with pytest.raises(ValueError, match="shard_size"):
        ChaosConfig(out=tmp_path, shard_size=0)
    with pytest.raises(ValueError, match="background_slowdown"):
        ChaosConfig(out=tmp_path, background_slowdown=0.7)


def test_s3fs_gets_every_object_through_503_slowdown_and_connection_resets(s3_server):
    import s3fs

    endpoint, _ = s3_server
    proxy = FaultyProxy(int(endpoint.rsplit(":", 1)[1]), seed=0).start()
    try:
        proxy.set_rates(slowdown=0.25, reset=0.15)
        fs = s3fs.S3FileSystem(endpoint_url=proxy.endpoint, key="testing", secret="testing")
        blobs = {f"dad-test/chaos-proxy/{i}": os.urandom(5000 + i) for i in range(12)}
        for key, data in blobs.items():
            fs.pipe_file(key, data)
        assert {key: fs.cat_file(key) for key in blobs} == blobs
        counts = proxy.counters.as_dict()
        assert counts["slowdown"] > 0 and counts["reset"] > 0, counts  # the faults did happen, and were retried
    finally:
        proxy.stop()


def test_a_short_rehearsal_loses_nothing_and_matches_the_fault_free_set(tmp_path):
    """Actor kill, driver kill + re-run, S3 restart, 503 SlowDown and resets during one generation on S3:
    every fault recovers; the set equals the fault-free run's (ids, shard bytes, manifest but times)."""
    from services.chaos.rehearsal import run_rehearsal
    from services.chaos.report import verdict, write_report

    kinds = ("actor_kill", "s3_restart", "s3_slowdown", "s3_reset", "driver_kill")  # the kill last: it costs a restart
    cfg = ChaosConfig(out=tmp_path, images=160, seed=1, shard_size=8, batch_size=8, generate_faults=5,
                      attack_steps=50, train=False, disk_full=False, api_kill=False, duration_s=240, fault_delay_s=(0.2, 1.0),
                      generate_kinds=kinds, ordered=True)
    report = run_rehearsal(cfg)
    json_path, md = write_report(report, tmp_path)
    v = verdict(report)
    print(md.read_text())
    fired = {f["kind"] for f in report.faults if f["fired_at_s"] is not None}
    assert fired == set(kinds), report.faults
    assert v["faults_recovered"] == v["faults_fired"], report.faults
    compare = report.phases["generate"]["compare"]
    assert compare["lost"] == 0 and compare["duplicated"] == 0 and compare["rows"] == 3 * 160
    assert compare["identical"], compare
    assert not report.findings, report.findings  # no attempt died on its own
    assert v["passed"] and json_path.exists()


@pytest.mark.slow  # ~90 s (three generator runs); `make chaos` runs it too
def test_a_full_disk_fails_naming_the_store_publishes_nothing_and_resumes_once_freed(tmp_path):
    from services.chaos.disk import disk_full_phase

    cfg = ChaosConfig(out=tmp_path, images=5, disk_images=60, seed=2)
    (tmp_path / "logs").mkdir()
    phase, record = disk_full_phase(cfg, tmp_path / "logs")
    if "skipped" in phase:
        pytest.skip(phase["skipped"])
    assert phase["first_exit"] == 1 and phase["error_names_store"] and phase["error_says_no_space"], phase
    assert "\x1b[" not in phase["error_line"] and "re-run" in phase["error_line"]
    assert not phase["manifest_after_failure"] and phase["temp_files_after_failure"] == []
    assert phase["second_exit"] == 0 and phase["compare"]["identical"], phase
    assert record.recovered
