"""What an objective needs is asked one way (schemas.jobs.checks.ObjectiveNeeds), by the validators, the
trainer's config and its step alike."""
from __future__ import annotations

import services.jobs  # noqa: F401 - installs the dad_core checks
from schemas.jobs.checks import ObjectiveNeeds, objective_needs


def test_each_objective_s_needs_answer_every_question_consistently():
    assert objective_needs("nonsense") is None and objective_needs(None) is None
    ce, kd, dad, dat = (objective_needs(o) for o in ("ce", "kd", "dad", "dat"))
    assert not ce.teacher and ce.sample_set("stored") is None and not ce.teacher_model("online")
    assert kd.teacher and not kd.adversarial and "stored logits" in kd.sample_set("stored")
    assert kd.sample_set("online") is None and kd.teacher_model("online") and not kd.teacher_model("stored")
    assert dad.adversarial and dad.teacher_on_adversarial and "Q(x')" in dad.sample_set("online")
    assert dat.student_attack and not dat.teacher
    assert ObjectiveNeeds(frozenset()) == ce
