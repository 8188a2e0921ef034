"""SampleSetManifest: round trip, and clear refusals of corrupt or foreign files."""
import json
from datetime import datetime, timezone

import pytest

from schemas import FORMAT_VERSION
from schemas.manifest import (
    ModelInfo, ReasonCounts, SampleSetConfig, SampleSetManifest, ShardInfo, SourceFingerprint, Statistics, Timings,
    CodeVersion,
)


def make_manifest() -> SampleSetManifest:
    now = datetime.now(timezone.utc)
    model = ModelInfo(kind="open_clip", name="tiny-clip-vit", weights=None, checksum="ab" * 32)
    config = SampleSetConfig(preset="tiny", preset_config={"image_size": 32}, fingerprint="f" * 64, teacher=model,
                             discretizer=model, attack={"steps": 1}, seed=0, image_size=32, shard_size=8,
                             batch_size=4, class_ids=["a", "b"], class_names=["a", "b"])
    stats = Statistics(seen=3, clean=2, accepted=1)
    stats.errored.add("corrupt", example="a/bad.jpg")
    stats.rejected.add("teacher_misclassifies_adversarial")
    return SampleSetManifest(
        name="set", created_at=now, config=config,
        source=SourceFingerprint(uri="file:///x", format="imagefolder", num_items=3, num_classes=2, sha256="0" * 64),
        shards=[ShardInfo(index=0, path="shards/shard-000000-aa.parquet", num_rows=4, num_bytes=10, sha256="1" * 64,
                          first_item=0, num_items=3)],
        statistics=stats, timings=Timings(started_at=now, finished_at=now), code_version=CodeVersion())


def test_manifest_round_trips_through_json():
    m = make_manifest()
    back = SampleSetManifest.from_json(m.to_json())
    assert back == m
    assert back.num_rows == 4
    assert back.statistics.errored.examples == {"corrupt": ["a/bad.jpg"]}
    assert back.statistics.acceptance_rate == 0.5


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"format": "dad-sample-set", "format_ver', "not valid JSON"),
    ("[1, 2]", "not a dad-sample-set document"),
    ('{"format": "something-else", "format_version": 1}', "has format 'something-else'"),
    ('{"format": "dad-sample-set", "format_version": 99}', "format_version 99.*newer"),
    ('{"format": "dad-sample-set", "format_version": 1, "name": "x"}', "not a valid dad-sample-set"),
])
def test_from_json_refuses_corrupt_or_foreign_manifests_with_a_clear_message(text, message):
    with pytest.raises(ValueError, match=message) as e:
        SampleSetManifest.from_json(text, source="s3://b/set/manifest.json")
    assert "s3://b/set/manifest.json" in str(e.value)


def test_unknown_fields_are_refused():
    d = json.loads(make_manifest().to_json())
    d["shards"][0]["surprise"] = 1
    with pytest.raises(ValueError, match="surprise"):
        SampleSetManifest.from_json(json.dumps(d))
    assert d["format_version"] == FORMAT_VERSION


def test_reason_counts_merge_adds_totals_and_caps_examples():
    a, b = ReasonCounts(), ReasonCounts()
    for i in range(4):
        a.add("corrupt", example=f"a{i}")
        b.add("corrupt", example=f"b{i}")
    b.add("too_large", 2)
    a.merge(b)
    assert a.total == 10 and a.reasons == {"corrupt": 8, "too_large": 2}
    assert len(a.examples["corrupt"]) == 5


def test_statistics_merge_sums_every_bucket():
    s, t = Statistics(seen=2, clean=1, accepted=1), Statistics(seen=3, clean=3, accepted=0, teacher_clean_correct=2)
    t.converted.add("CMYK")
    s.merge(t)
    assert (s.seen, s.clean, s.accepted, s.teacher_clean_correct, s.converted.reasons) == (5, 4, 1, 2, {"CMYK": 1})


def test_perturbation_tallies_merge_to_the_same_summary_as_one_tally():
    import numpy as np

    from schemas.manifest import Statistics
    from schemas.perturbation import DIAGNOSTIC_NAMES, PerturbationTally

    rng = np.random.default_rng(0)
    values = {name: rng.lognormal(-3, 1, 1000) for name in DIAGNOSTIC_NAMES}
    values["conf_drop_vs_qx"] = rng.normal(0, 0.1, 1000)
    values["codes_vs_qx"][:10] = np.nan  # not measured
    labels = rng.integers(0, 5, 1000)
    whole, parts = PerturbationTally(), Statistics()
    whole.add(values, labels.tolist())
    for start in range(0, 1000, 300):  # shards, merged as the manifest merges commit markers
        t = PerturbationTally()
        t.add({k: v[start:start + 300] for k, v in values.items()}, labels[start:start + 300].tolist())
        shard = Statistics.model_validate_json(Statistics(perturbation=t).model_dump_json())  # through JSON
        parts.merge(shard)
    a, b = whole.summary(), parts.perturbation.summary()
    for name in DIAGNOSTIC_NAMES:
        assert a.metrics[name].mean == pytest.approx(b.metrics[name].mean)
        assert a.metrics[name].quantiles == b.metrics[name].quantiles
    assert a.metrics["codes_vs_qx"].n == 990
    for name in ("l2_vs_qx", "conf_drop_vs_qx"):
        for q, key in ((0.05, "q05"), (0.5, "q50"), (0.95, "q95")):
            exact = np.quantile(values[name], q)
            assert a.metrics[name].quantiles[key] == pytest.approx(exact, rel=0.05, abs=1e-3)
    means = {c: values["l2_vs_qx"][labels == c].mean() for c in range(5)}
    assert {c: pytest.approx(m) for c, m in means.items()} == {c: d["l2_vs_qx"] for c, d in b.per_class.items()}


def test_immaterial_attack_says_what_to_change():
    from schemas.perturbation import immaterial_attack

    assert immaterial_attack({"same_vs_qx": 0.3, "codes_vs_qx": 0.2, "codes_vs_qqx": 0.05}) is None
    warning = immaterial_attack({"same_vs_qx": 0.8, "codes_vs_qx": 0.2})
    assert "attack.step_size" in warning and "80%" in warning
    assert "0.50% of Q's codes changed" in immaterial_attack({"same_vs_qx": 0.1, "codes_vs_qx": 0.005})
    # codes move against Q(x), but hardly against Q(Q(x)): the second pass through Q does the work, not delta
    assert "0.40% of Q's codes differ from Q(Q(x))'s" in immaterial_attack({"codes_vs_qx": 0.5, "codes_vs_qqx": 0.004})
    assert immaterial_attack({}) is None
