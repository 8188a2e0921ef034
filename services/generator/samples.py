"""The generator's per-batch work, free of Ray and storage: decoded images in, storable DAD samples out.

    x (uint8 from the source) -> Q(x') via dad_core.generate_dad_batch (Eq. 9)
    Q(x') -> rounded to uint8, the exact pixels the PNG will hold -> judged by the teacher

PNG is lossless, so judging the rounded uint8 image *is* judging the image as it will be read back; the
clean image is stored as it came from the decoder, so the teacher's clean logits from the attack pass are
also exactly those of the stored clean image. Tests check both by decoding the stored PNGs. With views
(`--views K`, services.generator.views) the teacher also scores K augmented views of x (and optionally of the
stored Q(x')), rendered from the stored pixels exactly as the trainer will rebuild them.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from dad_core import AttackConfig, generate_dad_batch, judge
from dad_core.attack import DADBatch, quantize
from dad_core.perturbation import perturbation_diagnostics
from schemas import sample_store as ss
from schemas.perturbation import PerturbationTally
from services.generator.batches import BatchStats, DecodedBatch, batch_seed
from services.generator.views import ViewJob, teacher_views
from services.sample_store.rows import SampleBatch, TeacherVerdicts

__all__ = ["BatchStats", "DecodedBatch", "batch_seed", "generate_samples", "to_uint8", "REJECTED_MISCLASSIFIED"]

REJECTED_MISCLASSIFIED = "teacher_misclassifies_adversarial"


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [0, 1] -> (B, 3, H, W) uint8 (round to nearest, as a PNG will hold it)."""
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8)


def _verdicts(logits: torch.Tensor, labels: torch.Tensor, accepted: torch.Tensor | None = None) -> TeacherVerdicts:
    confidence, prediction = logits.float().softmax(-1).max(-1)  # same rule as dad_core.judge
    return TeacherVerdicts(
        logits=logits.float().cpu().numpy().astype(np.float16),
        prediction=prediction.cpu().numpy().astype(np.int64),
        confidence=confidence.cpu().numpy().astype(np.float32),
        accepted=(np.ones(len(labels), bool) if accepted is None else accepted.cpu().numpy().astype(bool)),
    )


def generate_samples(teacher: torch.nn.Module, discretizer: torch.nn.Module, batch: DecodedBatch,
                     attack: AttackConfig, seed: int, device: str | torch.device = "cpu",
                     store_discretized: bool = True, views: ViewJob | None = None,
                     requantize_every: int = 1) -> tuple[SampleBatch | None, BatchStats]:
    """DAD samples of one batch: the clean image, Q(x) (optional) and Q(x'), each with the teacher's verdict,
    and with `views` the teacher's soft labels on K augmented views of x (and of Q(x') if asked)."""
    stats = BatchStats(batch.shard, batch.batch, items=len(batch), started_at=time.time())
    if not len(batch):
        stats.ended_at = stats.started_at
        return None, stats
    t0 = time.perf_counter()
    x = torch.tensor(batch.images, device=device).permute(0, 3, 1, 2).float().div_(255)  # (B, 3, S, S)
    y = torch.tensor(batch.labels, device=device)
    out = generate_dad_batch(teacher, discretizer, x, y, attack, seed=seed)
    adversarial = to_uint8(out.adversarial)                                              # (B, 3, S, S)
    t1 = time.perf_counter()
    verdict = judge(teacher, adversarial.float().div(255), y)  # the stored pixels, not the float Q(x')
    discretized, disc, logits_q = to_uint8(out.discretized), None, out.teacher_logits_discretized
    if store_discretized:
        j = judge(teacher, discretized.float().div(255), y)
        disc, logits_q = _verdicts(j.logits, y, accepted=j.correct), j.logits
    t2 = time.perf_counter()
    diagnostics = diagnose(discretizer, out, attack, discretized, adversarial, logits_q, verdict.logits, y,
                           requantize_every)
    t3 = time.perf_counter()
    discretized = discretized.permute(0, 2, 3, 1).contiguous().cpu().numpy() if store_discretized else None
    clean = _verdicts(out.teacher_logits_clean, y)
    adv = _verdicts(verdict.logits, y, accepted=verdict.correct)
    stats.accepted = int(adv.accepted.sum())
    rejected = len(batch) - stats.accepted
    stats.rejected = {REJECTED_MISCLASSIFIED: rejected} if rejected else {}
    stats.teacher_clean_correct = int((clean.prediction == batch.labels).sum())
    stats.stage_s = {"generate": t1 - t0, "judge": t2 - t1, "diagnose": t3 - t2}
    stats.perturbation = PerturbationTally()
    stats.perturbation.add(diagnostics, batch.labels.tolist())
    adversarial = adversarial.permute(0, 2, 3, 1).contiguous().cpu().numpy()  # (B, S, S, 3)
    clean_views = adversarial_views = None
    if views is not None:
        source = batch.view_images if batch.view_images is not None else batch.images
        clean_views = teacher_views(teacher, source, batch.source_ids, ss.KIND_CLEAN, views, device)
        if ss.KIND_ADVERSARIAL in views.info.kinds:
            adversarial_views = teacher_views(teacher, adversarial, batch.source_ids, ss.KIND_ADVERSARIAL, views,
                                              device)
        stats.stage_s["views"] = time.perf_counter() - t3
    stats.ended_at = time.time()
    sample = SampleBatch(
        source_ids=batch.source_ids, source_paths=batch.source_paths, labels=batch.labels,
        clean=batch.images, adversarial=adversarial,
        clean_verdicts=clean, adversarial_verdicts=adv, discretized=discretized, discretized_verdicts=disc,
        clean_views=clean_views, adversarial_views=adversarial_views, view_images=batch.view_images,
        perturbation=diagnostics)
    return sample, stats


def diagnose(discretizer: torch.nn.Module, out: DADBatch, attack: AttackConfig, discretized: torch.Tensor,
             adversarial: torch.Tensor, logits_q: torch.Tensor, logits_adv: torch.Tensor, labels: torch.Tensor,
             requantize_every: int = 1) -> dict[str, np.ndarray]:
    """dad_core's perturbation diagnostics of a batch, on the stored uint8 Q(x) and Q(x') (B, 3, S, S).

    Q(Q(x)) costs one more pass through Q, so it is made for every `requantize_every`-th item of the batch
    (the *_vs_qqx measures are NaN on the others); with attack.steps=0, Q(x') is Q(Q(x)) and every item has them.
    """
    if attack.steps == 0:
        rows = torch.arange(len(labels))
        requantized, codes_qx = out.adversarial, out.codes_adversarial
    else:
        rows = torch.arange(0, len(labels), requantize_every)
        requantized, codes_qx = quantize(discretizer, out.discretized[rows.to(out.discretized.device)])
    values = perturbation_diagnostics(
        discretized.float().div(255), to_uint8(requantized).float().div(255), adversarial.float().div(255),
        out.perturbed - out.discretized, logits_q, logits_adv, labels, out.codes_discretized, codes_qx,
        out.codes_adversarial, requantized_rows=rows)
    return {name: v.numpy().astype(np.float32) for name, v in values.items()}
