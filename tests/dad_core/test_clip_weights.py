"""open_clip teachers get the activation their weights were trained with (QuickGELU for OpenAI's), no download."""
import dataclasses
import warnings

import open_clip
import pytest
import torch
from open_clip.pretrained import _pcfg

from dad_core import create_teacher, get_preset
from dad_core.model_configs import register_open_clip_configs
from dad_core.teachers.clip_weights import create_clip, is_torchscript, tag_wants_quick_gelu, uses_quick_gelu

CLASSES = ["cat", "dog", "bird", "fish"]


@pytest.fixture
def tiny_tags(tmp_path, monkeypatch):
    """Two registered tags of tiny-clip-vit (one trained with QuickGELU), and a -quickgelu variant of the config."""
    register_open_clip_configs()
    path = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model("tiny-clip-vit").state_dict(), path)
    tags = {"qg": _pcfg(file=str(path), quick_gelu=True), "plain": _pcfg(file=str(path))}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "tiny-clip-vit", tags)
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "tiny-clip-vit-quickgelu", tags)
    qg_config = {**open_clip.get_model_config("tiny-clip-vit"), "quick_gelu": True}
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "tiny-clip-vit-quickgelu", qg_config)
    return path


@pytest.mark.parametrize("model, tag, quick", [
    ("tiny-clip-vit", None, False), ("tiny-clip-vit-quickgelu", None, True),  # random init: the config's own
    ("tiny-clip-vit", "qg", True), ("tiny-clip-vit", "plain", False),        # a tag: what the tag says
    ("tiny-clip-vit-quickgelu", "qg", True), ("tiny-clip-vit-quickgelu", "plain", False),
])
def test_the_activation_is_quick_gelu_exactly_when_the_tag_says_so(tiny_tags, model, tag, quick):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # and open_clip has nothing left to warn about
        teacher = create_teacher(dataclasses.replace(get_preset("tiny").teacher, model=model, pretrained=tag),
                                 CLASSES)
    assert uses_quick_gelu(teacher.model) is quick


def test_a_remaining_quick_gelu_mismatch_is_an_error(tiny_tags, monkeypatch):
    real = open_clip.create_model

    def ignores_the_fix(name, pretrained=None, force_quick_gelu=False, **kwargs):  # open_clip's own behaviour
        return real(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(open_clip, "create_model", ignores_the_fix)
    with pytest.raises(ValueError, match="QuickGELU"):
        create_clip("tiny-clip-vit", "qg")


def test_the_paper_teacher_is_a_quick_gelu_model_for_openai_weights():
    t = get_preset("paper").teacher
    assert tag_wants_quick_gelu(t.model, t.pretrained)
    assert open_clip.get_model_config(t.model).get("quick_gelu") is True


def test_openai_torchscript_file_loads_with_quick_gelu(tmp_path):
    register_open_clip_configs()
    source = open_clip.create_model("tiny-clip-vit").eval()
    image, text = torch.rand(1, 3, 32, 32), torch.randint(0, 100, (1, 32))
    path = tmp_path / "ViT-tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(source, (image, text), check_trace=False, strict=False).save(str(path))  # OpenAI's form
    assert is_torchscript(str(path))
    teacher = create_teacher(dataclasses.replace(get_preset("tiny").teacher, pretrained=str(path)), CLASSES)
    assert uses_quick_gelu(teacher.model)
    loaded = teacher.model.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
