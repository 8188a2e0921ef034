"""The objective registry: every registered objective runs on the inputs it declares, and the job configs
(schemas.jobs) know every input an objective can need."""
import pytest
import torch

from dad_core.losses import DistillConfig
from dad_core.objectives import (
    INPUTS, ObjectiveInputs, compute_objective, describe_objectives, get_objective, list_objectives,
    register_objective,
)
from schemas.jobs.checks import SAMPLE_SET_INPUTS, STUDENT_ATTACK_INPUTS, TEACHER_INPUTS


def test_the_job_configs_know_every_input_an_objective_can_need():
    assert INPUTS == TEACHER_INPUTS | SAMPLE_SET_INPUTS | STUDENT_ATTACK_INPUTS


@pytest.mark.parametrize("name", list_objectives())
def test_each_objective_runs_on_exactly_what_it_declares(name):
    torch.manual_seed(0)
    y = torch.tensor([0, 1, 2, 3])
    needed = {field: torch.randn(4, 5) for field in get_objective(name).needs}
    out = compute_objective(name, ObjectiveInputs(y, torch.randn(4, 5, requires_grad=True), **needed),
                            DistillConfig())
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"]) and out["loss"].requires_grad
    for missing in get_objective(name).needs:
        with pytest.raises(ValueError, match=missing):
            compute_objective(name, ObjectiveInputs(y, torch.randn(4, 5), **{k: v for k, v in needed.items()
                                                                               if k != missing}), DistillConfig())
    assert name in describe_objectives()


def test_registering_refuses_duplicates_and_unknown_inputs():
    with pytest.raises(ValueError, match="already registered"):
        register_objective("kd")(lambda i, c: {})
    with pytest.raises(ValueError, match="unknown inputs"):
        register_objective("new", needs={"teacher_logits"})
    assert "new" not in list_objectives()
