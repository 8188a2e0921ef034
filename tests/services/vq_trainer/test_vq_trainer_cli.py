import json

import numpy as np
import pytest
import torch
from PIL import Image

from dad_core import DiscretizerConfig, create_discretizer
from services.vq_trainer.cli import main, mean_psnr
from services.vq_trainer.data import load_images


def _image_folder(root, n=6, classes=("a", "b")):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            small = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
            Image.fromarray(small).resize((40, 40), Image.BILINEAR).save(root / c / f"{i}.png")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return root


def test_fitted_vq_checkpoint_loads_as_the_discretizer_and_reproduces_the_reported_psnr(tmp_path):
    src = _image_folder(tmp_path / "train")
    val = _image_folder(tmp_path / "val", n=2)
    out = tmp_path / "vq"
    assert main(["--source", str(src), "--out", str(out), "--image-size", "32", "--epochs", "3",
                 "--batch-size", "4", "--eval", f"val={val}"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["train_images"] == 12 and report["skipped"] == {"corrupt": 1}
    assert set(report["psnr_db"]) == {"train", "val"}
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3

    q = create_discretizer(DiscretizerConfig(config=str(out / "config.yaml"), checkpoint=str(out / "vq.ckpt")))
    images = load_images(str(val), 32, progress=False)[0]
    assert mean_psnr(q, images) == pytest.approx(report["psnr_db"]["val"], abs=1e-4)
    untrained = create_discretizer(DiscretizerConfig(config="tiny-vq"))
    assert mean_psnr(q, images) > mean_psnr(untrained, images)


def test_report_gives_the_training_mean_images_psnr_as_the_baseline(tmp_path):
    """A Q that learned only the average image scores this; the report puts it beside Q's PSNR per set."""
    src = _image_folder(tmp_path / "train")
    val = _image_folder(tmp_path / "val", n=2)
    assert main(["--source", str(src), "--out", str(tmp_path / "vq"), "--image-size", "32", "--epochs", "1",
                 "--batch-size", "4", "--eval", f"val={val}"]) == 0
    report = json.loads((tmp_path / "vq" / "report.json").read_text())
    assert set(report["mean_image_psnr_db"]) == {"train", "val"}
    mean_image = load_images(str(src), 32, progress=False)[0].float().mean(0) / 255
    held_out = load_images(str(val), 32, progress=False)[0].float() / 255
    expected = (10 * torch.log10(1 / (held_out - mean_image).square().flatten(1).mean(1))).mean().item()
    assert report["mean_image_psnr_db"]["val"] == pytest.approx(expected, abs=1e-3)


def test_report_gives_codebook_usage_per_set(tmp_path):
    """Share of codes used and their perplexity, counted from Q's own code indices on each set."""
    from services.vq_trainer.cli import code_usage

    src = _image_folder(tmp_path / "train")
    val = _image_folder(tmp_path / "val", n=2)
    out = tmp_path / "vq"
    assert main(["--source", str(src), "--out", str(out), "--image-size", "32", "--epochs", "1", "--batch-size", "4",
                 "--eval", f"val={val}", "--codebook-init", "data"]) == 0
    usage = json.loads((out / "report.json").read_text())["code_usage"]
    assert set(usage) == {"train", "val"} and usage["val"]["codebook_size"] == 64
    q = create_discretizer(DiscretizerConfig(config=str(out / "config.yaml"), checkpoint=str(out / "vq.ckpt")))
    images = load_images(str(val), 32, progress=False)[0]
    *_, (_, _, idx) = q.vqmodel.encode(images.float() / 255 * 2 - 1)
    assert usage["val"]["used"] == pytest.approx(len(idx.unique()) / 64)
    assert 1 <= usage["val"]["perplexity"] <= len(idx.unique())
    one = code_usage(q, images[:1])  # one image uses fewer codes than two
    assert one["used"] <= usage["val"]["used"] and one["codebook_size"] == 64


def test_bad_image_size_is_rejected_before_training(tmp_path):
    src = _image_folder(tmp_path / "train", n=1)
    with pytest.raises(SystemExit, match="multiple of 4"):
        main(["--source", str(src), "--out", str(tmp_path / "o"), "--image-size", "30"])


def test_codebook_init_from_data_puts_every_code_on_an_encoder_output(tmp_path):
    import torch

    from dad_core.discretizers.training import trainable
    from services.vq_trainer.cli import init_codebook_from_data

    images = load_images(str(_image_folder(tmp_path / "train")), 32, progress=False)[0]
    q = trainable(create_discretizer(DiscretizerConfig(config="tiny-vq", init_seed=0)))
    before = q.vqmodel.quantize.embedding.weight.detach().clone()
    with torch.no_grad():
        init_codebook_from_data(q, images)
        z = q.vqmodel.quant_conv(q.vqmodel.encoder(images.float() / 255 * 2 - 1))
    outputs = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (N*h*w, d)
    codes = q.vqmodel.quantize.embedding.weight
    assert not torch.allclose(codes, before)
    assert torch.cdist(codes, outputs).min(dim=1).values.max() < 1e-2  # each code is one of the encoder's outputs
