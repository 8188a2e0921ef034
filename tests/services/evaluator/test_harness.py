"""The harness: class protocols applied to real logits, skipped images counted, Ray sharding = in-process."""
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from dad_core.imagenet import subset_wnids, wnid_to_index
from services.evaluator.harness import FolderTask, HarnessConfig, evaluate_task, run_tasks, shard_tasks
from services.evaluator.models import LoadedModel, parse_model
from services.evaluator.suites import imagenet_protocol
from services.source import ReadSpec, list_source

SUBSET = list(subset_wnids("imagenet-a"))[:3]
DISTRACTOR = 0  # tench: not an ImageNet-A class


class GreyLevelOracle(nn.Module):
    """Knows each image's class from its grey level; its overall argmax is always the distractor class."""

    def forward(self, images):  # (B, 3, H, W) -> (B, 1000)
        k = (images.mean(dim=(1, 2, 3)) * 255 / 60).round().long() - 1  # grey level 60 * (k + 1)
        logits = torch.zeros(len(images), 1000)
        logits[:, DISTRACTOR] = 10.0
        logits[torch.arange(len(images)), torch.tensor([wnid_to_index()[SUBSET[i]] for i in k])] = 5.0
        return logits


def _grey_folder(root: Path, per_class: int = 3) -> Path:
    for k, wnid in enumerate(SUBSET):
        for i in range(per_class):
            (root / wnid).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (40, 36), (60 * (k + 1),) * 3).save(root / wnid / f"{i}.png")
    return root


def _task(root: Path, subset: str | None) -> FolderTask:
    listing = list_source(str(root))
    protocol = imagenet_protocol(listing.class_ids, "t", subset)
    return FolderTask("t", ReadSpec.for_listing(listing, 0), tuple(listing.items), protocol, None)


def test_200_class_protocol_scores_only_the_listed_logits(tmp_path):
    root = _grey_folder(tmp_path / "ina")
    model = LoadedModel(GreyLevelOracle(), (), image_size=32, crop_pct=1.0)
    cfg, cpu = HarnessConfig(batch_size=4, read_threads=2), torch.device("cpu")
    on_subset = evaluate_task(model, _task(root, "imagenet-a"), cfg, cpu)
    assert on_subset.correct == [3, 3, 3] and on_subset.total == [3, 3, 3]
    on_all = evaluate_task(model, _task(root, None), cfg, cpu)  # the distractor wins among all 1,000
    assert on_all.correct == [0, 0, 0] and on_all.total == [3, 3, 3]


def test_unreadable_images_are_skipped_and_counted_with_reasons(tmp_path):
    root = _grey_folder(tmp_path / "ina")
    (root / SUBSET[0] / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / SUBSET[1] / "empty.png").write_bytes(b"")
    model = LoadedModel(GreyLevelOracle(), (), image_size=32, crop_pct=1.0)
    counts = evaluate_task(model, _task(root, "imagenet-a"), HarnessConfig(batch_size=4), torch.device("cpu"))
    assert sum(counts.total) == 9 and counts.skipped == {"corrupt": 1, "empty_file": 1}
    assert {e["file"] for e in counts.skipped_examples} == {f"{SUBSET[0]}/broken.jpg", f"{SUBSET[1]}/empty.png"}


def test_shards_cover_every_image_once(tmp_path):
    task = _task(_grey_folder(tmp_path / "ina", per_class=5), "imagenet-a")
    shards = shard_tasks([task], shard_size=4)
    assert [len(s.items) for s in shards] == [4, 4, 4, 3]
    assert [i.index for s in shards for i in s.items] == [i.index for i in task.items]


def test_ray_actors_give_the_same_counts_as_one_process(ray_local, imagenet_student, tmp_path):
    root = _grey_folder(tmp_path / "ina", per_class=4)
    spec = parse_model(str(imagenet_student))
    task = _task(root, "imagenet-a")
    local = run_tasks(spec, [task], HarnessConfig(batch_size=4, workers=0))
    sharded = run_tasks(spec, [task], HarnessConfig(batch_size=4, workers=2, actor_cpus=0.5, shard_size=5))
    assert sharded["t"].correct == local["t"].correct and sharded["t"].total == local["t"].total == [4, 4, 4]
