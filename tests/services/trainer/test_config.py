import pytest
from pydantic import ValidationError

from dad_core.objectives import list_objectives
from services.trainer.config import TrainConfig


def make(**kw) -> TrainConfig:
    return TrainConfig(**{"source": "/data", "out": "/out", "samples": "/samples", "preset": "tiny",
                          "student": "test_resnet", **kw})


def test_defaults_follow_the_paper_objective_and_stored_logits():
    cfg = make()
    assert cfg.objective == "dad" and cfg.teacher_logits == "stored"
    assert not cfg.needs_teacher_model and cfg.needs_adversarial and cfg.needs_samples
    assert cfg.distill_config().temperature == 4.0 and cfg.distill_config().alpha == 0.5  # App. C


@pytest.mark.parametrize("field, value", [
    ("objective", "nope"), ("teacher_logits", "cached"), ("optimizer", "lamb"), ("epochs", 0),
    ("batch_size", -1), ("val_fraction", 1.0), ("bf16", "maybe"), ("cpus_per_worker", 0),
    ("randaugment", "autoaug"), ("lr", -0.1), ("student_init", "pretrained:bad tag"), ("student_init", "--x"),
])
def test_a_bad_field_is_named(field, value):
    with pytest.raises(ValidationError) as e:
        make(**{field: value})
    assert [err["loc"] for err in e.value.errors()] == [(field,)]


@pytest.mark.parametrize("aug", [{"randaugment": "rand-m9-mstd0.5"}, {"mixup": 0.2}, {"hflip": True}])
def test_view_augmentations_are_refused_with_stored_logits(aug):
    with pytest.raises(ValueError, match="online"):
        make(**aug)
    make(teacher_logits="online", **aug)  # the teacher sees the augmented view: valid
    make(objective="ce", samples=None, **aug)  # no teacher at all: valid


def test_objectives_say_what_data_they_need():
    assert not make(objective="ce", samples=None).needs_samples
    assert not make(objective="dat", samples=None).needs_samples and make(objective="dat").needs_dat
    assert not make(objective="kd", teacher_logits="online", samples=None).needs_samples
    with pytest.raises(ValidationError, match="samples\n.*required: objective 'dad' needs its adversarial"):
        make(objective="dad", samples=None)
    with pytest.raises(ValidationError, match="samples\n.*required: objective 'kd' needs the teacher's stored"):
        make(objective="kd", samples=None)
    with pytest.raises(ValidationError, match="mixup\n.*hard labels"):
        make(objective="dat", mixup=0.2)
    assert all(isinstance(make(objective=o, teacher_logits="online").uses_teacher, bool) for o in list_objectives())


def test_round_trips_through_a_dict_and_names_resume_conflicts():
    cfg = make(overrides={"distill.temperature": 2})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    saved = cfg.to_dict()
    assert make(overrides={"distill.temperature": 2}, epochs=200).resume_conflicts(saved) == []  # longer: ok
    assert any(c.startswith("objective") for c in make(objective="kd", overrides=cfg.overrides).resume_conflicts(saved))


def test_a_config_saved_before_typed_overrides_still_resumes():
    """train_config.json of earlier versions: overrides as "k=v" text, precision, label smoothing in overrides."""
    cfg = make(overrides={"distill.temperature": 2}, label_smoothing=0.1, bf16=True)
    old = {**cfg.to_dict(), "overrides": ["distill.temperature=2", "distill.label_smoothing=0.1"], "precision": "bf16"}
    del old["bf16"], old["label_smoothing"]
    assert cfg.resume_conflicts(old) == []
    assert cfg.resolve_preset().distill.label_smoothing == 0.1


def test_default_lr_scales_with_the_global_batch():
    assert make(batch_size=128, workers=2).learning_rate() == pytest.approx(0.1)
    assert make(optimizer="adamw", batch_size=512).learning_rate() == pytest.approx(1e-3)
    assert make(lr=0.5).learning_rate() == 0.5


def test_student_init_is_a_keyword_a_timm_tag_or_a_file_and_old_runs_resume_as_random():
    assert [make(student_init=v).student_init for v in ("random", "pretrained", "pretrained:a1_in1k", "/w/r50.pth",
                                                        "s3://b/w.safetensors")]
    old = make(student_init="random").to_dict()
    del old["student_init"]  # a train_config.json written before student_init existed: its student started at random
    assert make(student_init="random").resume_conflicts(old) == []
    assert make(student_init="pretrained").resume_conflicts(old) == ["student_init: saved 'random', now 'pretrained'"]
