"""Fitting a small VQ autoencoder to be Q, when no pretrained VQGAN fits the data.

The paper uses a pretrained VQGAN trained on ImageNet (the in-distribution set). Where none is available
(or for a new domain), a VQ model trained on the in-distribution images only plays the same role. This is
the reconstruction + codebook objective of VQ-VAE/VQGAN without the GAN and perceptual terms, which need
pretrained networks; it is a plain function so that any loop (ours, Lightning's) can call it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dad_core.discretizers.vqgan import VQGANDiscretizer
from dad_core.images import check_images


@dataclass(frozen=True)
class VQTrainingConfig:
    l1_weight: float = 1.0       # taming's reconstruction term is L1
    l2_weight: float = 1.0       # an L2 term keeps PSNR (an L2 metric) honest without a perceptual loss
    codebook_weight: float = 1.0  # taming's default; the commitment beta (0.25) lives in the quantizer


def vq_training_loss(q: VQGANDiscretizer, images: torch.Tensor, config: VQTrainingConfig = VQTrainingConfig()
                     ) -> dict[str, torch.Tensor]:
    """Loss of one batch of [0, 1] images, with detached terms and codebook usage for logging."""
    check_images(images)
    x = images * 2 - 1
    quant, codebook_loss, (_, _, indices) = q.vqmodel.encode(x)
    recon = q.vqmodel.decode(quant)
    l1 = (recon - x).abs().mean()
    l2 = F.mse_loss(recon, x)
    loss = config.l1_weight * l1 + config.l2_weight * l2 + config.codebook_weight * codebook_loss
    return {"loss": loss, "l1": l1.detach(), "l2": l2.detach(), "codebook": codebook_loss.detach(),
            "codes_used": torch.tensor(float(indices.unique().numel()))}


def psnr(reference: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, for [0, 1] images (B, C, H, W)."""
    mse = (reference - reconstruction).square().flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def trainable(q: VQGANDiscretizer) -> VQGANDiscretizer:
    """Unfreeze a discretizer for fitting (discretizers are frozen by default)."""
    for p in q.parameters():
        p.requires_grad_(True)
    return q
