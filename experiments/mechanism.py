"""The cheap mechanism check (no training): do DAD's samples move toward the shifts in the teacher's eyes?

The paper's App. D argues that discrete adversarial samples lie closer to shifted distributions than clean
images do. Here that is measured directly: the Fréchet distance, in the teacher's penultimate features, from
each kind of photo/train image set to the shifted val splits (art_painting, cartoon) and to photo val:

    x  |  Q(x)  |  Q(Q(x))  |  accepted Q(x')  |  all Q(x')

If no Q(x') set is nearer the shifts than Q(Q(x)) is, the attack adds nothing the second pass through Q does not
already give, whatever the students later show. Distances from sets of very different sizes are biased
differently (fewer rows, larger distance), so the report gives each set's size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from dad_core.metrics import frechet_distance
from schemas import sample_store as ss
from services.sample_store.reader import load_manifest, open_sample_set
from services.source.decode import decode_image
from experiments.splits import IMAGE_SUFFIXES


class FeatureExtractor:
    """The teacher's penultimate (pre-logits) features of [0, 1] images, with the teacher's own preprocessing."""

    def __init__(self, arch: str, checkpoint: Path, class_names: Sequence[str], image_size: int, batch_size: int = 128):
        from dad_core.teachers.timm_teacher import TimmTeacher

        self.teacher = TimmTeacher.from_config(arch, str(checkpoint), class_names, image_size)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: Iterable[torch.Tensor]) -> torch.Tensor:
        """(N, D) features of an iterable of (3, S, S) float images."""
        out, batch = [], []
        model = self.teacher.model

        def flush() -> None:
            x = self.teacher.preprocess(torch.stack(batch))
            out.append(model.forward_head(model.forward_features(x), pre_logits=True).float())
            batch.clear()

        for image in images:
            batch.append(image)
            if len(batch) == self.batch_size:
                flush()
        if batch:
            flush()
        return torch.cat(out) if out else torch.empty(0)


def folder_images(root: Path, image_size: int) -> Iterable[torch.Tensor]:
    """An ImageFolder's images, decoded and resized exactly as the generator decodes its source."""
    for path in sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        decoded = decode_image(path.read_bytes(), image_size)
        if decoded.pixels is not None:
            yield torch.from_numpy(decoded.pixels).permute(2, 0, 1).float().div_(255)


def set_rows(samples: Path, kind: str) -> tuple[list[torch.Tensor], np.ndarray]:
    """A sample set's rows of one kind (every row, rejected ones too) and whether each was accepted."""
    ds = open_sample_set(str(samples / "manifest.json"), kinds=(kind,), accepted_only=False)
    images, accepted = [], []
    for i in range(len(ds)):
        item = ds[i]
        images.append(item["image"])
        accepted.append(bool(item["accepted"]))
    return images, np.asarray(accepted)


def mechanism_check(extract: FeatureExtractor, targets: dict[str, Path], image_size: int, clean_set: Path,
                    qq_set: Path, grid_sets: dict[str, Path]) -> dict:
    """Fréchet distances from {x, Q(x), Q(Q(x))} (once) and {accepted Q(x'), all Q(x')} (per grid point, keyed
    like `grid_sets`) to each target val split. Returns {"targets": {...sizes}, "rows": [{set, point, n, fd: {}}]}."""
    target_features = {name: extract(folder_images(path, image_size)) for name, path in targets.items()}

    def row(name: str, point: str | None, features: torch.Tensor) -> dict:
        return {"set": name, "point": point, "n": int(features.shape[0]),
                "fd": {t: frechet_distance(features, f) for t, f in target_features.items()}}

    rows = []
    for name, samples, kind in (("x", clean_set, ss.KIND_CLEAN), ("Q(x)", clean_set, ss.KIND_DISCRETIZED),
                                ("Q(Q(x))", qq_set, ss.KIND_ADVERSARIAL)):
        images, _ = set_rows(samples, kind)
        rows.append(row(name, None, extract(images)))
    for point, samples in grid_sets.items():
        images, accepted = set_rows(samples, ss.KIND_ADVERSARIAL)
        features = extract(images)
        rows.append(row("all Q(x')", point, features))
        if accepted.sum() >= 2:
            rows.append(row("accepted Q(x')", point, features[torch.from_numpy(accepted)]))
    return {"targets": {name: int(f.shape[0]) for name, f in target_features.items()}, "rows": rows}


def class_names_of(samples: Path) -> list[str]:
    return list(load_manifest(str(samples / "manifest.json")).config.class_names)
