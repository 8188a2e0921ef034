import torch

from dad_core import DiscretizerConfig, create_discretizer
from dad_core.discretizers.training import psnr, trainable, vq_training_loss


def test_psnr_matches_the_definition():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.full((2, 3, 4, 4), 0.1)
    torch.testing.assert_close(psnr(a, b), torch.full((2,), 20.0))  # 10 log10(1 / 0.01)


def test_fitting_the_vq_model_lowers_its_loss_and_raises_psnr():
    torch.manual_seed(0)
    q = trainable(create_discretizer(DiscretizerConfig(config="tiny-vq")))
    # Smooth images (what natural images look like to a VQ model), not white noise.
    images = torch.nn.functional.interpolate(torch.rand(8, 3, 4, 4), size=32, mode="bilinear")
    opt = torch.optim.Adam(q.parameters(), lr=2e-3)
    with torch.no_grad():
        before = psnr(images, q(images)).mean()
    first = None
    for _ in range(40):
        out = vq_training_loss(q, images)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else out["loss"].item()
    with torch.no_grad():
        after = psnr(images, q(images)).mean()
    assert out["loss"].item() < 0.5 * first
    assert after > before + 3  # dB
    assert out["codes_used"] >= 1
