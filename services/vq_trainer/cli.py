"""`python -m services.vq_trainer`: fit a VQ model (taming's VQModel) to be the DAD discretizer.

Flags are the fields of schemas.jobs.FitQJobConfig; `--config FILE.json` reads a whole config (a value
that is not a .json file names the taming config, as --vq-config does). Writes to --out: `vq.ckpt`
({"state_dict": ...}, loads with `--set discretizer.checkpoint=...`), the taming `config.yaml`, `metrics.jsonl`
(one line per epoch) and `report.json` (reconstruction PSNR per --eval set, and the PSNR of the training set's
mean image beside it: a Q that only learned the mean image scores that).
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time

import torch
import yaml
from tqdm import tqdm

from dad_core import DiscretizerConfig, create_discretizer
from dad_core.discretizers.training import psnr, trainable, vq_training_loss
from dad_core.discretizers.vqgan import load_taming_config
from schemas.jobs import FitQJobConfig
from services.jobs.cli import Flag, job_config_from_args, job_parser
from services.storage import atomic_write_bytes, check_writable, join, open_filesystem
from services.vq_trainer.data import load_images


GROUPS = {"data": ["source", "out", "eval", "limit", "storage_options"],
          "model and recipe": ["vq_config", "image_size", "epochs", "batch_size", "lr", "codebook_init", "seed", "threads"]}
FLAGS = {"eval": Flag(metavar="NAME=URI")}


def build_parser() -> argparse.ArgumentParser:
    return job_parser(FitQJobConfig, prog="python -m services.vq_trainer", description=__doc__, groups=GROUPS,
                      flags=FLAGS)


def config_from_args(args: argparse.Namespace) -> FitQJobConfig:
    # Before job configs, --config named the taming config; a value that is not a JSON file still does.
    if args.config and not args.config.endswith(".json"):
        args.vq_config, args.config = args.config, None
    return job_config_from_args(FitQJobConfig, args, FLAGS)


@torch.no_grad()
def init_codebook_from_data(q, images: torch.Tensor) -> None:
    """Set each code to the encoder's output at a random position of a random training image (uint8 images,
    (N, 3, H, W)), so that every code starts where the data is and none is dead from the first step."""
    model = q.vqmodel
    x = images[torch.randperm(len(images))[:64]].float() / 255 * 2 - 1
    z = model.quant_conv(model.encoder(x))  # (B, d, h, w)
    z = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*h*w, d)
    codes = model.quantize.embedding.weight
    codes.copy_(z[torch.randint(len(z), (len(codes),))] if len(z) < len(codes) else z[torch.randperm(len(z))[:len(codes)]])


@torch.no_grad()
def mean_psnr(q, images: torch.Tensor, batch_size: int = 64) -> float:
    values = [psnr(x, q(x)) for x in (images[i:i + batch_size].float() / 255 for i in range(0, len(images), batch_size))]
    return torch.cat(values).mean().item()


@torch.no_grad()
def code_usage(q, images: torch.Tensor, batch_size: int = 64) -> dict[str, float]:
    """Share of the codebook used on `images` and the codes' perplexity (exp of the entropy of their use):
    a Q that uses few codes discretizes coarsely whatever its PSNR."""
    model = q.vqmodel
    counts = torch.zeros(model.quantize.n_e)
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].float() / 255 * 2 - 1
        *_, (_, _, indices) = model.encode(x)
        counts += torch.bincount(indices.flatten().cpu(), minlength=len(counts)).float()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"used": float((counts > 0).float().mean()), "perplexity": float(entropy.exp()), "codebook_size": len(counts)}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = config_from_args(parser.parse_args(argv))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    evals = args.eval
    fs, out = open_filesystem(args.out, args.storage_options)
    check_writable(fs, out)
    torch.manual_seed(args.seed)
    params = load_taming_config(args.vq_config)
    q = trainable(create_discretizer(DiscretizerConfig(config=args.vq_config, init_seed=args.seed)))
    if args.image_size % q.downsample_factor:
        raise SystemExit(f"--image-size must be a multiple of {q.downsample_factor} for this VQ config")

    images, _, _, skipped = load_images(args.source, args.image_size, limit=args.limit)
    if args.codebook_init == "data":
        init_codebook_from_data(q, images)
    steps_per_epoch = math.ceil(len(images) / args.batch_size)
    opt = torch.optim.Adam(q.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, args.epochs * steps_per_epoch))
    lines, t0 = [], time.time()
    for epoch in range(args.epochs):
        order = torch.randperm(len(images))
        totals: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="step", leave=False,
                   disable=not sys.stderr.isatty())  # a bar on a terminal; the line below either way
        for step in bar:
            x = images[order[step * args.batch_size:(step + 1) * args.batch_size]].float() / 255
            losses = vq_training_loss(q, x)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            opt.step()
            sched.step()
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / steps_per_epoch
            bar.set_postfix(loss=f"{losses['loss'].item():.4f}")
        lines.append({"epoch": epoch + 1, **totals, "elapsed_s": time.time() - t0})
        print(f"epoch {epoch + 1}/{args.epochs}: loss {totals['loss']:.4f}, {lines[-1]['elapsed_s']:.1f} s", flush=True)

    mean_image = images.float().mean(0, keepdim=True) / 255
    report = {"source": args.source, "config": args.vq_config, "image_size": args.image_size, "epochs": args.epochs,
              "train_images": len(images), "skipped": dict(skipped), "train_seconds": time.time() - t0,
              "psnr_db": {"train": mean_psnr(q, images)},
              "mean_image_psnr_db": {"train": mean_psnr(lambda x: mean_image.expand_as(x), images)},
              "code_usage": {"train": code_usage(q, images)}}
    for name, uri in evals.items():
        held_out = load_images(uri, args.image_size)[0]
        report["psnr_db"][name] = mean_psnr(q, held_out)
        report["mean_image_psnr_db"][name] = mean_psnr(lambda x: mean_image.expand_as(x), held_out)
        report["code_usage"][name] = code_usage(q, held_out)
    buf = io.BytesIO()
    torch.save({"state_dict": q.vqmodel.state_dict()}, buf)
    atomic_write_bytes(fs, join(out, "vq.ckpt"), buf.getvalue())
    atomic_write_bytes(fs, join(out, "config.yaml"), yaml.safe_dump({"model": {
        "target": "taming.models.vqgan.VQModel", "params": params}}, sort_keys=False).encode())
    atomic_write_bytes(fs, join(out, "metrics.jsonl"), "".join(json.dumps(l) + "\n" for l in lines).encode())
    atomic_write_bytes(fs, join(out, "report.json"), json.dumps(report, indent=2).encode())
    print("PSNR (dB) of Q:", json.dumps(report["psnr_db"]))
    print("PSNR (dB) of the training set's mean image, the baseline Q must beat:", json.dumps(report["mean_image_psnr_db"]))
    return 0
