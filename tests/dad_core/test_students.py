import pytest
import timm
import torch

from dad_core import PixelSpaceClassifier, create_student


def test_exported_state_dict_loads_through_timm_create_model(tmp_path):
    student = create_student("test_resnet", num_classes=7).eval()
    path = tmp_path / "student.pth"
    torch.save(student.state_dict(), path)
    reloaded = timm.create_model("test_resnet", num_classes=7, checkpoint_path=str(path)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(reloaded(x), student(x))


def test_unknown_student_and_mismatched_checkpoint_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="unknown timm model 'resnet5000'"):
        create_student("resnet5000", num_classes=3)
    path = tmp_path / "s.pth"
    torch.save(create_student("test_resnet", num_classes=3).state_dict(), path)
    with pytest.raises(ValueError, match="does not match"):
        create_student("test_resnet", num_classes=5, checkpoint_path=str(path))
    with pytest.raises(FileNotFoundError):
        create_student("test_resnet", num_classes=3, checkpoint_path=str(tmp_path / "none.pth"))


def test_pixel_space_classifier_applies_the_models_normalisation():
    model = create_student("test_resnet", num_classes=3).eval()
    wrapped = PixelSpaceClassifier(model)
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), model((x - mean) / std))
    with pytest.raises(ValueError):
        wrapped(x * 255)


def _backbone(model):
    return {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}


def test_a_student_starts_from_an_imagenet_style_checkpoint_with_a_fresh_head(tmp_path):
    """A 1,000-class checkpoint (what timm's ImageNet weights are) fine-tunes to K classes: backbone loaded,
    classifier new; the record names the file and its sha256."""
    import hashlib

    from safetensors.torch import save_file

    from dad_core import init_student

    imagenet = create_student("test_resnet", num_classes=1000)
    path = tmp_path / "in1k.safetensors"
    save_file({k: v.contiguous() for k, v in imagenet.state_dict().items()}, str(path))
    model, record = init_student("test_resnet", 3, str(path))
    assert model.fc.out_features == 3 and record["head"] == "new (3 classes)" and record["init"] == "file"
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    for k, v in _backbone(imagenet).items():
        assert torch.equal(model.state_dict()[k], v), k
    fresh, _ = init_student("test_resnet", 3, "random")
    assert not torch.equal(fresh.conv1[0].weight, model.conv1[0].weight)  # the file made the difference


def test_a_checkpoint_with_the_same_classes_keeps_its_head_and_wrapped_checkpoints_load(tmp_path):
    from dad_core import init_student

    trained = create_student("test_resnet", num_classes=3)
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": trained.state_dict()}, path)  # timm train.py's checkpoint layout
    model, record = init_student("test_resnet", 3, str(path))
    assert record["head"] == "loaded"
    for k, v in trained.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_student_init_errors_name_the_problem(tmp_path):
    from dad_core import init_student

    other = tmp_path / "other.pth"
    torch.save(timm.create_model("resnet10t", num_classes=3).state_dict(), other)
    with pytest.raises(ValueError, match="does not fit the timm model"):
        init_student("test_resnet", 3, str(other))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable timm checkpoint"):
        init_student("test_resnet", 3, str(junk))
    with pytest.raises(FileNotFoundError, match="student_init"):
        init_student("test_resnet", 3, str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="pretrained:TAG"):
        init_student("test_resnet", 3, "pretrained:bad tag")
    with pytest.raises(ValueError, match="no pretrained weights for 'test_resnet.nope'"):
        init_student("test_resnet", 3, "pretrained:nope")


def test_pretrained_weights_that_are_not_in_the_cache_fail_clearly_offline():
    """No weights exist on test machines and HF_HUB_OFFLINE=1 (conftest, before huggingface_hub is imported):
    the error says where timm looks and what to do."""
    from dad_core import init_student

    with pytest.raises(ValueError, match="Hugging Face cache.*local checkpoint file"):
        init_student("test_resnet", 3, "pretrained")


def test_the_paper_preset_fine_tunes_pretrained_students_and_tiny_starts_at_random():
    from dad_core import get_preset

    assert get_preset("paper").student_init == "pretrained"  # the official code's timm pretrained=True
    assert get_preset("tiny").student_init == "random"
    with pytest.raises(ValueError, match="pretrained:TAG"):
        get_preset("tiny", {"student_init": "pretrained:no way"})
