"""The train job (`python -m services.trainer`): a timm student trained on clean images + a sample set.

Cross-field rules the job enforces, checked here so the API refuses the same configs (422 naming the field):
- an objective that uses Q(x') or stored teacher logits needs a sample set;
- stored teacher logits belong to the exact stored pixels, so no view-changing augmentation
  (randaugment, mixup, hflip, random_resized_crop) with an objective that distils the teacher; use
  teacher_logits=online, or a sample set with stored views (generator --views K), whose logits belong to
  each view's pixels (`views`);
- no mixup with the student's own attack (DAT needs hard labels).
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo, WithJsonSchema, field_validator

from schemas.fields import (
    Cpus, Gpus, JobStorageOptions, Name, NonNegativeInt, PositiveInt, RayAddress, Seed, Uri, check_uri,
)
from schemas.jobs.base import JobModel, PresetName, PresetOverrides, overrides_field, preset_field, registry_examples
from schemas.jobs.checks import installed_checks, objective_needs

TEACHER_LOGITS = ("stored", "online")
ADVERSARIAL_ROWS = ("accepted", "all", "discretized")
OPTIMIZERS = ("sgd", "adamw")
# Where the student's weights start (dad_core.students.init_student gives the meaning; this is the form).
STUDENT_INIT_KEYWORDS = ("random", "pretrained")
STUDENT_INIT_TAG = re.compile(r"^pretrained:[A-Za-z0-9_]+$")


def check_student_init(value: str) -> str:
    if value in STUDENT_INIT_KEYWORDS or STUDENT_INIT_TAG.match(value):
        return value
    if value.startswith("pretrained:"):
        raise ValueError("a timm tag is pretrained:TAG (letters, digits, _), e.g. pretrained:a1_in1k")
    return check_uri(value)


StudentInit = Annotated[str, StringConstraints(min_length=1, max_length=2048), AfterValidator(check_student_init),
                        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 2048,
                                        "examples": ["random", "pretrained", "pretrained:a1_in1k",
                                                     "/weights/resnet50.safetensors"]})]


def require_sample_set(value, info: ValidationInfo):
    """Validator of a train config's sample-set field (`samples` in the job, `sample_set` in the API)."""
    needed, why = needs_sample_set(info.data.get("objective"), info.data.get("teacher_logits"))
    if needed and not value:
        raise ValueError(f"required: objective {info.data.get('objective')!r} needs {why}")
    return value


def needs_sample_set(objective: str | None, teacher_logits: str | None) -> tuple[bool, str]:
    """(needed, why) for an objective: its Q(x'), or the teacher's stored logits."""
    needs = objective_needs(objective)
    why = needs.sample_set(teacher_logits) if needs is not None else None
    return why is not None, why or ""


class TrainSettings(JobModel):
    source: Uri = Field(description="the clean training set: ImageFolder tree or Parquet images (any fsspec URL)")
    objective: Name = Field("dad", description="training loss, from dad_core's objective registry",
                            json_schema_extra=registry_examples("objectives"))
    teacher_logits: Literal["stored", "online"] = Field(
        "stored", description="stored: read phi(x), phi(Q(x')) from the sample set, no teacher in memory; "
                              "online: run the teacher on the augmented views")
    preset: PresetName = preset_field("paper")
    overrides: PresetOverrides = overrides_field()
    student: Name | None = Field(None, description="timm model name (default: the preset's student)")
    student_init: StudentInit | None = Field(
        None, description="where the student's weights start: random; pretrained (timm's weights of the student "
                          "name, e.g. resnet50 or resnet50.a1_in1k, from the Hugging Face cache; the official DAD "
                          "code's pretrained=True) or pretrained:TAG; or a checkpoint file in timm's format (a "
                          "classifier of another size starts fresh). Default: the preset's (paper: pretrained, "
                          "tiny: random)")
    class_map: Uri | None = Field(None, description="class map file of the source, as given to the generator")
    source_format: Literal["auto", "imagefolder", "parquet"] = Field("auto", description="source layout")
    val: Uri | None = Field(None, description="validation source (same classes); default: hold out val_fraction "
                                              "of the source items")
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.02, description="share of source items (and their Q(x')) held out for per-epoch accuracy when val is not "
                          "given (chosen by a hash of the item id: the same items every run)")
    # recipe
    epochs: PositiveInt = Field(90, description="total epochs")
    batch_size: PositiveInt = Field(128, description="clean examples per worker per step; each brings its "
                                                     "accepted Q(x')")
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="optimizer")
    lr: Annotated[float, Field(ge=0, le=100)] | None = Field(
        None, description="peak learning rate (default: 0.1 x global batch / 256 for SGD, 1e-3 x global batch / "
                          "512 for AdamW)")
    momentum: Annotated[float, Field(ge=0, le=1)] = Field(0.9, description="SGD momentum")
    weight_decay: Annotated[float, Field(ge=0, le=10)] | None = Field(
        None, description="decoupled from biases and norm layers (default: 1e-4 SGD, 0.05 AdamW)")
    warmup_epochs: Annotated[float, Field(ge=0, le=1000)] = Field(5.0, description="linear warm-up, then cosine "
                                                                                   "decay per step")
    min_lr: Annotated[float, Field(ge=0, le=100)] = Field(0.0, description="learning rate at the end of the cosine")
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] | None = Field(
        None, description="on every cross-entropy term (sets distill.label_smoothing; default: the preset's)")
    randaugment: Annotated[str, Field(pattern=r"^rand(-[a-z]+[0-9.]*)*$", max_length=128)] | None = Field(
        None, description="timm RandAugment, e.g. rand-m9-mstd0.5 (needs teacher_logits online when distilling)")
    mixup: Annotated[float, Field(ge=0, le=100)] = Field(0.0, description="Mixup Beta(alpha, alpha), 0 = off (needs "
                                                                          "teacher_logits online when distilling)")
    hflip: bool = Field(False, description="random horizontal flips (needs teacher_logits online when distilling)")
    random_resized_crop: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="random-resized crop: the smallest share of the image's area a crop keeps (e.g. 0.35; "
                          "aspect 3/4 to 4/3), resized back to the image size (needs teacher_logits online when "
                          "distilling)")
    adversarial_rows: Literal["accepted", "all", "count-matched", "discretized"] = Field(
        "accepted", description="which stored rows pair with each x as its Q(x'): accepted (Eq. 9: Q(x') the teacher "
                                "still classifies correctly), all (control: no teacher-correct filter), count-matched "
                                "(control: no filter, but per class only as many Q(x'), drawn at random from all, as "
                                "accepted has), discretized (control: the un-attacked Q(x), same filter: no "
                                "adversarial step)")
    bf16: bool = Field(False, description="bfloat16 autocast for student and teacher")
    channels_last: bool = Field(False, description="channels_last memory format (faster convnets on GPUs)")
    seed: Seed = Field(0, description="seed of the run")
    # resources
    workers: PositiveInt = Field(1, description="Ray Train workers, one DDP rank each")
    gpus_per_worker: Gpus = Field(0.0, description="0 trains on CPUs with gloo; >= 1 uses NCCL")
    cpus_per_worker: Cpus = Field(1.0, description="CPUs reserved per worker; fractional on small machines")
    loader_workers: Annotated[int, Field(ge=0, le=64)] = Field(2, description="DataLoader processes per worker")
    shuffle_window: PositiveInt = Field(16, description="Parquet row groups shuffled together (more mixes better, "
                                                        "costs memory)")
    max_failures: NonNegativeInt = Field(0, description="Ray Train restarts after a worker failure; each resumes "
                                                        "from the last checkpoint")
    # reporting
    log_every: PositiveInt = Field(10, description="steps per metrics line")
    max_steps_per_epoch: PositiveInt | None = Field(None, description="cap steps per epoch (smoke tests)")
    # stored views (augmentation with stored logits): services.trainer.data.views
    views: NonNegativeInt | None = Field(
        None, description="augmented views of a sample set made with the generator's --views K: epoch e shows each "
                          "image (and Q(x'), if its views are stored) as view e mod N with the teacher's stored "
                          "logits on it, no teacher in memory; 0 = the stored images unaugmented (default: all "
                          "the set's views with stored logits, none with online)")

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, objective: str) -> str:
        checks = installed_checks()
        if checks is not None:
            checks.objective_needs(objective)  # ValueError naming the valid objectives
        return objective

    @field_validator("randaugment", "mixup", "hflip", "random_resized_crop")
    @classmethod
    def _no_view_change_with_stored_logits(cls, value, info: ValidationInfo):
        objective, logits = info.data.get("objective"), info.data.get("teacher_logits")
        needs = objective_needs(objective)
        if value and needs is not None:
            if needs.teacher and logits == "stored":
                # Stored logits belong to the exact stored pixels; a view change would pair an image with
                # someone else's logits (silent label noise), so refuse rather than train on it.
                raise ValueError(f"must be off with stored teacher logits (objective {objective!r} distils the "
                                 "teacher; the stored logits only match the unaugmented image): set "
                                 "teacher_logits to online, or augment with stored views (generator --views K)")
            if info.field_name == "mixup" and needs.student_attack:
                raise ValueError(f"must be 0 for objective {objective!r} (the student's own attack needs hard labels)")
        return value


    @field_validator("adversarial_rows")
    @classmethod
    def _rows_need_adversarial_objective(cls, value: str, info: ValidationInfo) -> str:
        needs = objective_needs(info.data.get("objective"))
        if value != "accepted" and needs is not None and not needs.adversarial:
            raise ValueError(f"must be 'accepted' for objective {info.data.get('objective')!r}, which trains on no "
                             "stored Q(x')")
        return value


class TrainJobConfig(TrainSettings):
    """One training run: the settings plus its locations and run-time options."""

    out: Uri = Field(description="run folder for checkpoints, metrics.jsonl and model.pth (local or s3://)")
    samples: Uri | None = Field(None, validate_default=True,
                                description="sample set from services.generator: its manifest.json or its folder; "
                                            "required by every objective that uses Q(x') or stored teacher logits")
    storage_options: JobStorageOptions
    ray_address: RayAddress
    progress_bar: bool = Field(True, description="show a progress bar")
    verify_shards: bool = Field(True, description="check every shard of the sample set against the sha256 sums "
                                                  "of its manifest before training (reads every shard once)")

    _samples_if_needed = field_validator("samples")(require_sample_set)
