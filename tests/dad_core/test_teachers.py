import dataclasses

import open_clip
import pytest
import torch
import torch.nn.functional as F

from dad_core import TeacherConfig, create_teacher, create_student
from dad_core.teachers.openclip import prompt_templates

CLASSES = ["cat", "dog", "bird", "fish"]  # as in conftest.py


def test_zero_shot_head_is_the_mean_normalised_text_embedding_of_each_class(tiny_teacher):
    model = tiny_teacher.model
    tokenizer = open_clip.get_tokenizer("tiny-clip-vit")
    templates = prompt_templates("simple")
    with torch.no_grad():
        for k, name in enumerate(CLASSES):
            emb = F.normalize(model.encode_text(tokenizer([t(name) if callable(t) else t.format(name) for t in templates])), dim=-1).mean(0)
            torch.testing.assert_close(tiny_teacher.zero_shot_head[:, k], F.normalize(emb, dim=0))


def test_zero_shot_head_picks_the_class_whose_text_embedding_the_image_is_aligned_to(tiny_teacher, monkeypatch):
    order = torch.tensor([2, 0, 3, 1])
    aligned = tiny_teacher.zero_shot_head.T[order] * 3.0  # image embeddings equal to class text embeddings
    monkeypatch.setattr(tiny_teacher.model, "encode_image", lambda pixels: aligned)
    logits = tiny_teacher(torch.rand(4, 3, 32, 32))
    assert torch.equal(logits.argmax(-1), order)
    # CLIP's scale: an aligned pair scores exactly exp(logit_scale) (cosine similarity 1).
    scale = tiny_teacher.model.logit_scale.exp()
    torch.testing.assert_close(logits.max(-1).values, scale.expand(4))


def test_teacher_is_frozen_stays_in_eval_mode_and_passes_input_gradients(tiny_teacher, images):
    assert not any(p.requires_grad for p in tiny_teacher.parameters())
    tiny_teacher.train()
    assert not tiny_teacher.training
    x = images.clone().requires_grad_(True)
    tiny_teacher(x).logsumexp(-1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_teacher_resizes_inputs_of_any_size(tiny_teacher):
    assert tiny_teacher(torch.rand(2, 3, 48, 40)).shape == (2, len(CLASSES))


def test_open_clip_checkpoint_round_trip_gives_identical_logits(tiny_teacher, tiny_preset, tmp_path, images):
    path = tmp_path / "clip.pt"
    torch.save(tiny_teacher.model.state_dict(), path)
    cfg = dataclasses.replace(tiny_preset.teacher, pretrained=str(path), init_seed=12345)  # other random init
    loaded = create_teacher(cfg, CLASSES)
    with torch.no_grad():
        assert torch.equal(loaded(images), tiny_teacher(images))


def test_mismatched_clip_checkpoint_names_the_problem(tiny_teacher, tiny_preset, tmp_path):
    sd = tiny_teacher.model.state_dict()
    sd["logit_scale"] = torch.zeros(3)
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(ValueError, match="could not load CLIP weights"):
        create_teacher(dataclasses.replace(tiny_preset.teacher, pretrained=str(path)), CLASSES)


@pytest.mark.parametrize("pretrained, error, match", [
    ("/no/such/clip.pt", FileNotFoundError, "not found"),
    ("no-such-tag", ValueError, "unknown pretrained tag"),
])
def test_bad_weights_fail_with_a_clear_error_and_no_download(tiny_preset, pretrained, error, match):
    with pytest.raises(error, match=match):
        create_teacher(dataclasses.replace(tiny_preset.teacher, pretrained=pretrained), CLASSES)


def test_unknown_model_name_is_rejected(tiny_preset):
    with pytest.raises(ValueError, match="unknown open_clip model"):
        create_teacher(dataclasses.replace(tiny_preset.teacher, model="ViT-Nope"), CLASSES)
    with pytest.raises(ValueError, match="teacher.kind"):
        TeacherConfig(kind="keras")


def test_timm_teacher_loads_a_checkpoint_with_identical_logits(tmp_path, images):
    student = create_student("test_resnet", num_classes=4)
    path = tmp_path / "teacher.pth"
    torch.save(student.state_dict(), path)
    cfg = TeacherConfig(kind="timm", model="test_resnet", pretrained=str(path), image_size=32)
    teacher = create_teacher(cfg, CLASSES)
    student.eval()
    expected = student((images - teacher.mean) / teacher.std)
    torch.testing.assert_close(teacher(images), expected)


def test_timm_teacher_with_wrong_class_count_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "teacher.pth"
    torch.save(create_student("test_resnet", num_classes=10).state_dict(), path)
    with pytest.raises(ValueError, match="does not match"):
        create_teacher(TeacherConfig(kind="timm", model="test_resnet", pretrained=str(path)), CLASSES)


@pytest.mark.parametrize("bad, match", [
    (torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), "floating-point"),
    (torch.rand(2, 1, 32, 32), "3 channels"),
    (torch.rand(2, 4, 32, 32), "3 channels"),
    (torch.rand(3, 32, 32), "shape"),
    (torch.rand(2, 3, 32, 32) * 255, r"\[0, 1\]"),
    (torch.rand(2, 3, 32, 32) - 0.5, r"\[0, 1\]"),
    (torch.full((2, 3, 32, 32), float("nan")), "NaN"),
])
def test_bad_images_are_rejected_with_a_message_naming_the_problem(tiny_teacher, bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_teacher(bad)
