import pytest
import torch
import yaml

from dad_core import DiscretizerConfig, IdentityDiscretizer, create_discretizer
from dad_core.discretizers.vqgan import VQGANDiscretizer, load_taming_config
from dad_core.model_configs import vqgan_config_names, vqgan_config_path


def test_vq_output_is_an_image_of_the_same_size_in_unit_range(tiny_vq, images):
    with torch.no_grad():
        out = tiny_vq(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert 0 <= out.min() and out.max() <= 1


def test_vq_latents_are_snapped_to_codebook_entries(tiny_vq, images):
    with torch.no_grad():
        quant, _, _ = tiny_vq.vqmodel.encode(images * 2 - 1)  # (B, d, h, w)
    vectors = quant.permute(0, 2, 3, 1).reshape(-1, quant.shape[1])
    codebook = tiny_vq.vqmodel.quantize.embedding.weight
    assert torch.cdist(vectors, codebook).min(dim=1).values.max() < 1e-5


def test_input_gradients_pass_through_the_discretizer(tiny_vq, images):
    x = images.clone().requires_grad_(True)
    tiny_vq(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in tiny_vq.parameters())


def test_identity_discretizer_returns_its_input(images):
    assert torch.equal(IdentityDiscretizer()(images), images)


def test_sides_not_divisible_by_the_downsampling_factor_are_rejected(tiny_vq):
    assert tiny_vq.downsample_factor == 4
    with pytest.raises(ValueError, match="divisible by 4"):
        tiny_vq(torch.rand(1, 3, 30, 32))


def test_checkpoint_round_trip_gives_identical_output(tiny_vq, tmp_path, images):
    path = tmp_path / "vq.ckpt"
    # A Lightning-style checkpoint with the GAN loss's weights, as taming and latent-diffusion ship them.
    sd = {**tiny_vq.vqmodel.state_dict(), "loss.discriminator.weight": torch.zeros(1)}
    torch.save({"state_dict": sd, "global_step": 10}, path)
    loaded = create_discretizer(DiscretizerConfig(config="tiny-vq", checkpoint=str(path), init_seed=99))
    with torch.no_grad():
        assert torch.equal(loaded(images), tiny_vq(images))


def test_mismatched_or_missing_checkpoint_fails_clearly(tiny_vq, tmp_path):
    sd = tiny_vq.vqmodel.state_dict()
    sd.pop("quantize.embedding.weight")
    path = tmp_path / "partial.ckpt"
    torch.save(sd, path)
    with pytest.raises(ValueError, match="does not match the config"):
        create_discretizer(DiscretizerConfig(config="tiny-vq", checkpoint=str(path)))
    with pytest.raises(FileNotFoundError, match="not found"):
        create_discretizer(DiscretizerConfig(config="tiny-vq", checkpoint=str(tmp_path / "nope.ckpt")))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        create_discretizer(DiscretizerConfig(config="tiny-vq", checkpoint=str(garbage)))


@pytest.mark.parametrize("name, factor, codebook, dim", [
    ("vq-f8", 8, 16384, 4),  # the paper's default (App. C)
    ("vqgan-imagenet-f16-16384", 16, 16384, 256),
    ("vqgan-imagenet-f16-1024", 16, 1024, 256),
    ("tiny-vq", 4, 64, 4),
])
def test_bundled_taming_configs(name, factor, codebook, dim):
    params = load_taming_config(name)
    assert 2 ** (len(params["ddconfig"]["ch_mult"]) - 1) == factor
    assert (params["n_embed"], params["embed_dim"]) == (codebook, dim)
    assert name in vqgan_config_names()


def test_config_from_a_yaml_path_or_dict(tmp_path):
    cfg = yaml.safe_load(vqgan_config_path("tiny-vq").read_text())
    path = tmp_path / "my-vq.yaml"
    path.write_text(yaml.safe_dump(cfg))
    q = create_discretizer(DiscretizerConfig(config=str(path)))
    assert isinstance(q, VQGANDiscretizer)
    assert VQGANDiscretizer.from_config(cfg["model"]["params"]).downsample_factor == 4
    with pytest.raises(ValueError, match="unknown VQGAN config"):
        load_taming_config("vq-f99")
    with pytest.raises(ValueError, match="n_embed"):
        load_taming_config({"ddconfig": {}, "embed_dim": 4})
