import pytest
import torch

from services.trainer.config import TrainConfig
from services.trainer.optim import cosine_with_warmup, create_optimizer, create_scheduler


def test_cosine_with_warmup_rises_linearly_then_decays_to_the_floor():
    f = [cosine_with_warmup(s, total_steps=100, warmup_steps=10, min_factor=0.1) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx(0.55) and f[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))


def test_no_weight_decay_on_biases_and_norms_and_schedule_state_round_trips():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    cfg = TrainConfig(source="s", out="o", objective="ce", epochs=2, weight_decay=0.1, lr=1.0, warmup_epochs=0)
    opt = create_optimizer(model, cfg)
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, 0.1] and len(opt.param_groups[0]["params"]) + len(opt.param_groups[1]["params"]) == 4
    sched = create_scheduler(opt, cfg, steps_per_epoch=5)
    for _ in range(5):
        opt.step()
        sched.step()
    again = create_scheduler(create_optimizer(model, cfg), cfg, steps_per_epoch=5)
    again.load_state_dict(sched.state_dict())
    assert again.get_last_lr() == sched.get_last_lr() and sched.get_last_lr()[0] == pytest.approx(0.5)
