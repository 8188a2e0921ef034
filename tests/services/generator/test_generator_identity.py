"""A sample set's identity: the weight files' digests (no stale teacher logits) and the seeded shard order."""
import pytest
import torch

from dad_core import DiscretizerConfig, create_discretizer
from schemas import sample_store as ss
from services.generator import GeneratorConfig, run_generation
from services.generator.pipeline import GenerationError, prepare_job
from services.generator.weights import file_sha256
from services.sample_store import open_sample_set
from services.source.listing import SHARD_ORDER


def test_a_checkpoint_changed_in_place_makes_a_new_set_and_a_fixed_name_refuses_it(ray_local, tiny_image_folder,
                                                                                   tmp_path):
    ckpt = tmp_path / "q.ckpt"
    torch.save(create_discretizer(DiscretizerConfig(config="tiny-vq")).vqmodel.state_dict(), ckpt)
    base = dict(source=str(tiny_image_folder), out=str(tmp_path / "store"), shard_size=6, batch_size=6, limit=6,
                overrides={"discretizer.checkpoint": str(ckpt)}, cpus_per_actor=0.5, progress_bar=False)
    digest = file_sha256(str(ckpt))
    done = run_generation(GeneratorConfig(**base, name="fixed"))
    assert done.manifest.config.discretizer.weights_sha256 == digest
    assert done.manifest.config.shard_order == SHARD_ORDER
    before = prepare_job(GeneratorConfig(**base))

    sd = torch.load(ckpt)  # "retrain" Q into the same path: same config, same file name, other weights
    key = next(k for k, v in sd.items() if v.is_floating_point())
    sd[key] = sd[key] + 0.01
    torch.save(sd, ckpt)

    after = prepare_job(GeneratorConfig(**base))
    assert after.weights["discretizer"] == file_sha256(str(ckpt)) != digest
    assert after.set_fingerprint != before.set_fingerprint and after.name != before.name  # a new set (folder)
    assert ss.sample_id(after.set_fingerprint, "a/b.jpg", ss.KIND_CLEAN) != \
        ss.sample_id(before.set_fingerprint, "a/b.jpg", ss.KIND_CLEAN)
    with pytest.raises(GenerationError, match="different sample set"):  # never the old set's logits
        run_generation(GeneratorConfig(**base, name="fixed"))


def test_shards_follow_a_seeded_permutation_not_the_class_sorted_listing(tiny_image_folder, tmp_path):
    job = prepare_job(GeneratorConfig(source=str(tiny_image_folder), out=str(tmp_path), shard_size=4))
    again = prepare_job(GeneratorConfig(source=str(tiny_image_folder), out=str(tmp_path), shard_size=4))
    ids = [i.source_id for i in job.listing.items]
    assert ids == [i.source_id for i in again.listing.items]  # deterministic: resume finds the same shards
    assert ids != sorted(ids) and sorted(ids) == sorted(i.source_id for i in job.listing.items)
    first_shard = job.listing.items[:4]
    assert len({i.label for i in first_shard}) > 1  # sorted, the first shard would hold class 0 only
    other_seed = prepare_job(GeneratorConfig(source=str(tiny_image_folder), out=str(tmp_path),
                                             overrides={"attack.seed": 1}))
    assert [i.source_id for i in other_seed.listing.items] != ids
    assert other_seed.listing.fingerprint() == job.listing.fingerprint()  # the source is the same source


def test_limit_takes_a_seeded_subset_of_every_class_not_the_first_classes(make_image_folder, tmp_path):
    folder = make_image_folder(tmp_path / "src", classes=("a", "b", "c", "d"), per_class=10, size=(16, 16))
    config = dict(source=str(folder), out=str(tmp_path / "store"), limit=12)
    job = prepare_job(GeneratorConfig(**config))
    labels = [item.label for item in job.listing.items]
    assert len(labels) == 12 and set(labels) == {0, 1, 2, 3}  # the first 12 sorted would be a, a, ..., b, b
    assert [i.source_id for i in prepare_job(GeneratorConfig(**config)).listing.items] == \
        [i.source_id for i in job.listing.items]  # the same subset every run
