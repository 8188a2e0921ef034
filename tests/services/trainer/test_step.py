import math

import pytest
import torch

from dad_core import PixelSpaceClassifier, create_discretizer, create_student, create_teacher
from dad_core.objectives import list_objectives
from services.trainer.data import build_datasets, collate_examples
from services.trainer.step import StepModels, StepSettings, compute_losses

CPU = torch.device("cpu")


def one_batch(cfg, n=6):
    data = build_datasets(cfg)
    # rows with and without a Q(x') partner, so both paths of Eq. (9) run
    order = sorted(range(len(data.train)), key=lambda k: -int(data.train.pairs[k, 1] >= 0))
    picked = order[:n // 2] + order[-(n // 2):]
    return data, collate_examples([data.train[k] for k in picked])


def models_for(cfg, data):
    torch.manual_seed(0)
    preset = cfg.resolve_preset()
    student = create_student(cfg.student, num_classes=len(data.class_names))
    teacher = create_teacher(preset.teacher, data.class_names) if cfg.needs_teacher_model else None
    q = create_discretizer(preset.discretizer) if cfg.needs_dat else None
    return StepModels(student, PixelSpaceClassifier(student), teacher, q)


def settings_for(cfg):
    preset = cfg.resolve_preset()
    return StepSettings(cfg.objective, preset.distill, preset.dat, cfg.mixup, cfg.precision, cfg.channels_last)


@pytest.mark.parametrize("objective", list_objectives())
def test_every_objective_trains_a_step_with_a_finite_loss(objective, train_config):
    cfg = train_config(objective=objective)
    data, batch = one_batch(cfg)
    models = models_for(cfg, data)
    before = [p.detach().clone() for p in models.student.parameters()]
    losses = compute_losses(models, batch, settings_for(cfg), CPU)
    assert math.isfinite(losses["loss"].item())
    losses["loss"].backward()
    torch.optim.SGD(models.student.parameters(), lr=0.1).step()
    assert any(not torch.equal(a, b) for a, b in zip(before, models.student.parameters()))
    if objective in ("dad", "dat+dad"):
        assert float(losses["kd_adv"]) > 0 and 0 < float(losses["accepted_fraction"]) < 1


def test_online_logits_with_augmentation_run_the_teacher_on_the_same_views(train_config):
    cfg = train_config(teacher_logits="online", mixup=0.4, hflip=True, randaugment="rand-m9-mstd0.5")
    data, batch = one_batch(cfg)
    assert batch.teacher_logits is None  # online: nothing read from the store
    models = models_for(cfg, data)
    assert models.teacher is not None
    losses = compute_losses(models, batch, settings_for(cfg), CPU)
    assert math.isfinite(losses["loss"].item()) and {"ce", "kd_clean", "kd_adv"} <= set(losses)


def test_stored_logits_match_the_teacher_on_the_stored_pixels(train_config):
    """Why `stored` needs no teacher: the store holds phi(x) for exactly the pixels training reads."""
    cfg = train_config()
    data, batch = one_batch(cfg)
    teacher = create_teacher(cfg.resolve_preset().teacher, data.class_names)
    with torch.no_grad():
        online = teacher(batch.images.float() / 255)
    torch.testing.assert_close(online, batch.teacher_logits, atol=2e-2, rtol=1e-2)  # float16 storage


def test_bf16_and_channels_last_train(train_config):
    cfg = train_config(bf16=True, channels_last=True)
    data, batch = one_batch(cfg)
    models = models_for(cfg, data)
    models.student.to(memory_format=torch.channels_last)
    losses = compute_losses(models, batch, settings_for(cfg), CPU)
    losses["loss"].backward()
    assert math.isfinite(losses["loss"].item())


def test_loss_decreases_on_a_fixed_batch(train_config):
    cfg = train_config()
    data, batch = one_batch(cfg)
    models = models_for(cfg, data)
    opt = torch.optim.SGD(models.student.parameters(), lr=0.05, momentum=0.9)
    history = []
    for _ in range(15):
        losses = compute_losses(models, batch, settings_for(cfg), CPU)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        history.append(losses["loss"].item())
    assert history[-1] < 0.7 * history[0], history


@pytest.mark.parametrize("objective", ["dat", "dat+dad"])
def test_dat_runs_the_student_only_for_what_it_uses(objective, train_config):
    # one forward + backward for DAT's attack step, one batched forward for the loss: nothing thrown away
    cfg = train_config(objective=objective)
    data, batch = one_batch(cfg)
    models = models_for(cfg, data)
    calls = []
    models.student.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    compute_losses(models, batch, settings_for(cfg), CPU)
    assert len(calls) == 2 and calls[0] == len(batch)
