"""Fixtures for the trainer tests: one tiny sample set made by the real generator, and tiny configs."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass(frozen=True)
class SampleSet:
    source: Path       # the ImageFolder the set was made from
    manifest: str      # its manifest URI
    folder: Path       # the set folder (copy it before changing it)


@pytest.fixture(scope="session")
def sample_set(tmp_path_factory, make_image_folder, ray_local) -> SampleSet:
    """3 classes x 6 images through `services.generator` (tiny preset, 32 px): 18 clean rows, some accepted Q(x')."""
    from services.generator import GeneratorConfig, prepare_job, run_generation

    root = tmp_path_factory.mktemp("trainer_data")
    source = make_image_folder(root / "source", per_class=6)  # 3 ImageNet wnids: tench, goldfish, tabby cat
    config = GeneratorConfig(source=str(source), out=str(root / "samples"), preset="tiny", shard_size=8,
                             batch_size=8, progress_bar=False)
    result = run_generation(config, job=prepare_job(config))
    assert result.manifest.statistics.accepted > 0, "the fixture needs some accepted Q(x') to test pairing"
    return SampleSet(source, result.manifest_uri, Path(result.set_uri.removeprefix("file://")))


@pytest.fixture(scope="session")
def views_sample_set(tmp_path_factory, sample_set, ray_local) -> SampleSet:
    """The same source through the generator with --views 2 (views of x, cut from a 40 px copy, and of Q(x');
    full logits)."""
    from services.generator import GeneratorConfig, prepare_job, run_generation

    root = tmp_path_factory.mktemp("trainer_views")
    config = GeneratorConfig(source=str(sample_set.source), out=str(root / "samples"), preset="tiny", shard_size=8,
                             batch_size=8, progress_bar=False, views=2, adversarial_views=True, view_image_size=40)
    result = run_generation(config, job=prepare_job(config))
    assert result.manifest.config.views.count == 2 and result.manifest.config.views.source_size == 40
    return SampleSet(sample_set.source, result.manifest_uri, Path(result.set_uri.removeprefix("file://")))


@pytest.fixture
def train_config(sample_set, tmp_path):
    """Factory: a tiny TrainConfig on the fixture's sample set; keyword arguments override fields."""
    from services.trainer.config import TrainConfig

    def make(**overrides) -> TrainConfig:
        fields = dict(source=str(sample_set.source), samples=sample_set.manifest, out=str(tmp_path / "run"),
                      preset="tiny", student="test_resnet", epochs=1, batch_size=4, loader_workers=0,
                      warmup_epochs=0, val_fraction=0.2, progress_bar=False, log_every=1, lr=0.01)
        fields.update(overrides)
        return TrainConfig(**fields)

    return make
