"""The generator actor: holds one teacher and one discretizer for its lifetime (never shipped per task)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from services.generator.batches import BatchStats, DecodedBatch, batch_seed
from services.generator.views import ViewJob
from services.sample_store.rows import SampleBatch

if TYPE_CHECKING:
    from dad_core import Preset


class DADWorker:
    """Holds one teacher and one discretizer for its lifetime; turns decoded batches into DAD samples."""

    def __init__(self, preset: "Preset", class_names: Sequence[str], torch_threads: int | None = None,
                 device: str | None = None, views: ViewJob | None = None, requantize_every: int = 1):
        """`preset` is the job's resolved Preset (resolved once on the driver, shipped as an object); `views`
        how to make the augmented views of each batch (None: the set has none); `requantize_every` which items
        get the diagnostics against Q(Q(x)) (services.generator.samples.diagnose)."""
        import torch

        from dad_core import create_discretizer, create_teacher, module_checksum

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.attack = preset.attack
        self.image_size = preset.image_size
        self.views = views
        self.requantize_every = requantize_every
        self.teacher = create_teacher(preset.teacher, class_names=list(class_names), device=self.device)
        self.discretizer = create_discretizer(preset.discretizer, device=self.device)
        self.checksums = {"teacher": module_checksum(self.teacher), "discretizer": module_checksum(self.discretizer)}

    def identity(self) -> dict[str, str]:
        """Weights checksums and device, after a one-image dry run so a bad config fails at start-up."""
        from services.generator.samples import generate_samples

        s = self.image_size
        v = self.views.info.source_size if self.views is not None and self.views.info.source_size != s else None
        dry = DecodedBatch(-1, 0, ["dry-run"], ["dry-run"], np.zeros(1, np.int64), np.zeros((1, s, s, 3), np.uint8),
                           None if v is None else np.zeros((1, v, v, 3), np.uint8))
        generate_samples(self.teacher, self.discretizer, dry, self.attack, seed=0, device=self.device,
                         views=self.views)
        return {**self.checksums, "device": str(self.device)}

    def process(self, batch: DecodedBatch) -> tuple[SampleBatch | None, BatchStats]:
        from services.generator.samples import generate_samples

        seed = batch_seed(self.attack.seed, batch.shard, batch.batch)
        return generate_samples(self.teacher, self.discretizer, batch, self.attack, seed, self.device,
                                views=self.views, requantize_every=self.requantize_every)
