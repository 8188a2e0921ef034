"""--model: trainer exports, bare checkpoints and teachers resolve to a spec; bad ones fail naming them."""

import pytest
import torch

from dad_core.imagenet import imagenet1k_classnames
from services.evaluator.models import ModelError, load_model, parse_model


def test_a_trainer_run_folder_gives_arch_classes_and_its_validation_transform(imagenet_student):
    spec = parse_model(str(imagenet_student))
    assert (spec.kind, spec.arch, spec.label, spec.image_size, spec.crop_pct) == (
        "student", "test_resnet", imagenet_student.name, 32, 1.0)
    assert spec.class_names == tuple(imagenet1k_classnames())
    loaded = load_model(spec)
    with torch.no_grad():
        assert loaded.module(torch.rand(2, 3, 32, 32)).shape == (2, 1000)


def test_a_bare_checkpoint_needs_its_arch_and_takes_class_names_from_a_file(three_class_checkpoint, tmp_path):
    with pytest.raises(ModelError, match="needs --arch"):
        parse_model(str(three_class_checkpoint))
    names = tmp_path / "classes.txt"
    names.write_text("dog\ncat\nhorse\n")
    spec = parse_model(str(three_class_checkpoint), arch="test_resnet", class_names=str(names))
    assert spec.class_names == ("dog", "cat", "horse") and spec.label == three_class_checkpoint.parent.name
    loaded = load_model(spec)
    assert loaded.image_size == 160 and loaded.crop_pct == 0.95  # timm's own eval transform for test_resnet


def test_unreadable_or_mismatched_checkpoints_fail_naming_the_file(three_class_checkpoint, tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelError, match="cannot load checkpoint '.*garbage.pth' as test_resnet"):
        load_model(parse_model(str(garbage), arch="test_resnet"))
    with pytest.raises(ModelError, match="cannot load checkpoint '.*student.pth' as test_resnet with 1000 classes"):
        load_model(parse_model(str(three_class_checkpoint), arch="test_resnet"))
    with pytest.raises(ModelError, match="no such checkpoint"):
        parse_model(str(tmp_path / "missing.pth"), arch="test_resnet")
    with pytest.raises(ModelError, match="--arch 'resnet5000'"):
        load_model(parse_model(str(three_class_checkpoint), arch="resnet5000", class_names="imagenet"))


def test_teachers_are_zero_shot_over_the_classes_a_suite_needs():
    spec = parse_model("teacher:tiny")
    assert spec.kind == "teacher" and spec.zero_shot and spec.teacher.model == "tiny-clip-vit"
    loaded = load_model(spec, ["dog", "cat"])
    assert loaded.class_names == ("dog", "cat") and loaded.image_size == 32
    with pytest.raises(ModelError, match="unknown preset"):
        parse_model("teacher:huge")
    with pytest.raises(ModelError, match="cannot build teacher 'clip:RN50'.*no-such-tag"):
        load_model(parse_model("clip:RN50", pretrained="no-such-tag"), ["dog"])
