import pytest

from dad_core import get_preset, list_presets, parse_overrides
from dad_core.discretizers.vqgan import load_taming_config


def test_paper_preset_holds_the_papers_settings():
    p = get_preset("paper")
    # Sec. 4.1; OpenAI's weights were trained with QuickGELU, so the architecture must use it
    assert (p.teacher.kind, p.teacher.model, p.teacher.pretrained) == ("open_clip", "ViT-L-14-quickgelu", "openai")
    assert p.image_size == 224
    params = load_taming_config(p.discretizer.config)  # App. C: f=8, d=4, K=16384
    assert (params["n_embed"], params["embed_dim"], len(params["ddconfig"]["ch_mult"])) == (16384, 4, 4)
    assert (p.attack.steps, p.attack.step_size) == (1, 0.1)  # App. C: one iteration, attack lr 0.1
    assert (p.attack.norm, p.attack.epsilon, p.attack.random_start) == ("l2", 0.1, 0.8)  # DAT's attack (App. C)
    assert (p.dat.norm, p.dat.step_size, p.dat.epsilon, p.dat.random_start, p.dat.student_mode) == (
        "l2", 0.1, 0.1, 0.8, "train")  # DAT's official settings
    assert (p.distill.temperature, p.distill.alpha) == (4.0, 0.5)  # App. C: t=4, a=0.5


def test_presets_are_listed_by_name():
    assert {"tiny", "paper"} <= set(list_presets())
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        get_preset("huge")


def test_overrides_change_one_field_and_the_fingerprint():
    base = get_preset("tiny")
    p = get_preset("tiny", overrides=parse_overrides(["attack.steps=3", "discretizer.checkpoint=/w/vq.ckpt",
                                                      "image_size=64", "attack.epsilon=null",
                                                      "attack.random_start=0"]))
    assert (p.attack.steps, p.discretizer.checkpoint, p.image_size, p.attack.epsilon) == (3, "/w/vq.ckpt", 64, None)
    assert p.attack.step_size == base.attack.step_size
    assert p.fingerprint() != base.fingerprint()
    assert get_preset("tiny").fingerprint() == base.fingerprint()


@pytest.mark.parametrize("overrides, match", [
    ({"attack.stepz": 2}, "attack.'stepz'|'stepz'"),
    ({"teacherr.model": "x"}, "'teacherr'"),
    ({"attack.grad": "adam"}, "attack.grad"),
    ({"image_size": "big"}, "image_size"),
    ({"attack.steps.x": 1}, "not a section"),
])
def test_bad_overrides_name_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        get_preset("tiny", overrides=overrides)


def test_parse_overrides_types_and_errors():
    assert parse_overrides(["a=1", "b=0.5", "c=true", "d=[1, 2]", "e=text", "f=null"]) == \
        {"a": 1, "b": 0.5, "c": True, "d": [1, 2], "e": "text", "f": None}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["novalue"])


def test_the_library_and_the_jobs_read_set_text_the_same_way():
    """One parser: YAML read `1e-05` as text and `2` for a text field as a number; JSON + the field's type
    reads both as the job configs do."""
    from dad_core.presets import parse_override

    items = ["attack.step_size=1e-05", "teacher.model=2", "attack.epsilon=null", "discretizer.checkpoint=/w/q.ckpt"]
    assert parse_overrides(items) == dict(map(parse_override, items)) == {
        "attack.step_size": 1e-05, "teacher.model": "2", "attack.epsilon": None, "discretizer.checkpoint": "/w/q.ckpt"}
    assert get_preset("tiny", parse_overrides(items[:1])).attack.step_size == 1e-05


def test_teachers_and_discretizers_are_registered_by_name_like_objectives():
    """A user's own Q is one decorated function; the config accepts its name and the factory builds it."""
    import torch

    from dad_core.discretizers import (
        DiscretizerConfig, IdentityDiscretizer, create_discretizer, list_discretizers, register_discretizer,
    )
    from dad_core.discretizers import factory
    from dad_core.teachers import list_teachers

    assert list_teachers() == ["open_clip", "timm"] and list_discretizers()[:2] == ["vqgan", "identity"]
    with pytest.raises(ValueError, match="discretizer.kind must be one of vqgan, identity"):
        DiscretizerConfig(kind="mine")

    class Halve(IdentityDiscretizer):
        def forward(self, x):
            return x / 2

    try:
        register_discretizer("mine")(lambda config: Halve())
        q = create_discretizer(DiscretizerConfig(kind="mine"))
        assert torch.equal(q(torch.ones(1, 3, 2, 2)), torch.full((1, 3, 2, 2), 0.5))
        with pytest.raises(ValueError, match="discretizer.kind 'mine' is already registered"):
            register_discretizer("mine")(lambda config: Halve())
    finally:
        factory.DISCRETIZERS.remove("mine")


def test_each_preset_value_is_written_once_in_the_file_or_as_the_default():
    import json
    from importlib import resources

    from dad_core.attack import AttackConfig
    from dad_core.dat import DATConfig
    from dad_core.presets import Preset

    default = Preset(name="default").to_dict()
    for name in list_presets():
        data = json.loads(resources.files("dad_core.presets").joinpath(f"{name}.json").read_text())
        for key, value in data.items():
            if isinstance(value, dict):
                same = {f for f, v in value.items() if default[key][f] == v}
                assert not same, f"{name}.json repeats the defaults of {key}: {sorted(same)}"
            elif key != "description":
                assert default[key] != value, f"{name}.json repeats the default of {key}"
    shared = ("steps", "step_size", "norm", "epsilon", "random_start")
    assert {f: getattr(DATConfig(), f) for f in shared} == {f: getattr(AttackConfig(), f) for f in shared}
