"""The fit-Q job (`python -m services.vq_trainer`): fit a VQ model to be the DAD discretizer Q."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.fields import JobStorageOptions, PositiveInt, Seed, Uri
from schemas.jobs.base import JobModel


class FitQJobConfig(JobModel):
    source: Uri = Field(description="ImageFolder or Parquet image source to fit (any fsspec URL)")
    out: Uri = Field(description="output folder (any fsspec URL): vq.ckpt, config.yaml, metrics.jsonl, report.json")
    vq_config: Annotated[str, StringConstraints(min_length=1, max_length=2048)] = Field(
        "tiny-vq", description="bundled taming config name (tiny-vq, vq-f8, ...) or a taming YAML path")
    image_size: PositiveInt = Field(64, description="training resolution, a multiple of the VQ factor")
    epochs: PositiveInt = Field(20, description="passes over the training images")
    batch_size: PositiveInt = Field(32, description="images per step")
    lr: Annotated[float, Field(gt=0, le=10)] = Field(2e-3, description="Adam learning rate (cosine decay to 0)")
    eval: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")], Uri] = Field(
        default_factory=dict, description="held-out sources to report PSNR on, NAME=URI (e.g. photo=/data/photo_val)")
    codebook_init: Literal["random", "data"] = Field(
        "random", description="codebook start: taming's uniform init, or encoder outputs of training images (avoids "
                              "the collapse to a few codes that short fits on small data suffer)")
    limit: PositiveInt | None = Field(None, description="use at most this many training images")
    seed: Seed = Field(0, description="seed of the initialisation and the batch order")
    threads: PositiveInt | None = Field(None, description="torch CPU threads (default: torch's choice)")
    storage_options: JobStorageOptions
