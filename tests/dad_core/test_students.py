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
