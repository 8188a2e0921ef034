"""The registry of training objectives: name -> loss function + the inputs it needs (timm-registry style).

    @register_objective("kd", needs={"teacher_clean"}, summary="KD on clean images (Eq. 7)")
    def _kd(i: ObjectiveInputs, cfg: DistillConfig) -> LossDict: ...

The trainer picks an objective by name (`compute_objective`), the job configs check names and needs
against it (what data a run must have: a sample set, an online teacher, the student's own attack), and
`--help` and the API's schema list its names. Losses themselves are in dad_core.losses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from dad_core.losses import (
    DistillConfig, LossDict, Tensor, ard_loss, cross_entropy, dad_loss, dat_dad_loss, dat_loss, dist_loss, kd_loss,
    rslad_loss,
)

# What an objective may need besides labels and student_clean (`accepted` is always optional).
INPUTS = frozenset({"teacher_clean", "student_adv", "teacher_adv", "student_dat_adv"})


@dataclass
class ObjectiveInputs:
    """Everything an objective may consume for one batch; each objective uses a subset (see objective_needs).

    For DAD-style objectives a batch whose rows have no usable adversarial partner can pass
    accepted = all False (student_adv/teacher_adv may then be any finite placeholder such as zeros).
    """

    labels: Tensor
    student_clean: Tensor
    teacher_clean: Optional[Tensor] = None
    student_adv: Optional[Tensor] = None
    teacher_adv: Optional[Tensor] = None
    accepted: Optional[Tensor] = None
    student_dat_adv: Optional[Tensor] = None


ObjectiveFn = Callable[[ObjectiveInputs, DistillConfig], LossDict]


@dataclass(frozen=True)
class Objective:
    name: str
    fn: ObjectiveFn
    needs: frozenset[str]
    summary: str


_REGISTRY: dict[str, Objective] = {}


def register_objective(name: str, needs: Iterable[str] = (), summary: str = ""):
    """Decorator: add `fn(inputs, cfg) -> LossDict` to the registry under `name`."""
    needs = frozenset(needs)
    if needs - INPUTS:
        raise ValueError(f"objective {name!r} needs unknown inputs {sorted(needs - INPUTS)}; known: {sorted(INPUTS)}")

    def add(fn: ObjectiveFn) -> ObjectiveFn:
        if name in _REGISTRY:
            raise ValueError(f"objective {name!r} is already registered")
        _REGISTRY[name] = Objective(name, fn, needs, summary)
        return fn
    return add


def list_objectives() -> list[str]:
    return list(_REGISTRY)


def get_objective(name: str) -> Objective:
    if name not in _REGISTRY:
        raise ValueError(f"unknown objective {name!r}; valid objectives: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def objective_needs(name: str) -> frozenset[str]:
    """Inputs (beyond labels and student_clean) that objective `name` requires; lets a trainer fail early."""
    return get_objective(name).needs


def describe_objectives() -> str:
    """One line per objective, for help texts."""
    return "\n".join(f"  {o.name:<8} {o.summary}" for o in _REGISTRY.values())


def compute_objective(name: str, inputs: ObjectiveInputs, cfg: DistillConfig) -> LossDict:
    """Dispatch to objective `name` after checking that every input it needs is present."""
    objective = get_objective(name)
    for field in sorted(objective.needs):
        if getattr(inputs, field) is None:
            raise ValueError(f"objective {name!r} needs inputs.{field}, which is None")
    return objective.fn(inputs, cfg)


# -- the objectives (registration order is the order users see) -------------------------------------------------
@register_objective("ce", summary="cross-entropy on clean images (no teacher)")
def _ce(i: ObjectiveInputs, c: DistillConfig) -> LossDict:
    return cross_entropy(i.student_clean, i.labels, c)


@register_objective("kd", needs={"teacher_clean"}, summary="knowledge distillation on clean images (Eq. 7)")
def _kd(i: ObjectiveInputs, c: DistillConfig) -> LossDict:
    return kd_loss(i.student_clean, i.teacher_clean, i.labels, c)


@register_objective("dist", needs={"teacher_clean"}, summary="DIST (Huang et al. 2022) on clean images")
def _dist(i: ObjectiveInputs, c: DistillConfig) -> LossDict:
    return dist_loss(i.student_clean, i.teacher_clean, i.labels, c)


@register_objective("ard", needs={"teacher_clean", "student_adv"}, summary="ARD on the set's Q(x')")
def _ard(i: ObjectiveInputs, c: DistillConfig) -> LossDict:
    return ard_loss(i.student_clean, i.student_adv, i.teacher_clean, i.labels, c, i.accepted)


@register_objective("rslad", needs={"teacher_clean", "student_adv"}, summary="RSLAD on the set's Q(x')")
def _rslad(i: ObjectiveInputs, c: DistillConfig) -> LossDict:
    return rslad_loss(i.student_clean, i.student_adv, i.teacher_clean, c, i.accepted)


@register_objective("dad", needs={"teacher_clean", "student_adv", "teacher_adv"},
                    summary="DAD: CE + KD on x and on the teacher's Q(x') (Eq. 9, default)")
def _dad(i: ObjectiveInputs, c: DistillConfig) -> LossDict:
    return dad_loss(i.student_clean, i.teacher_clean, i.labels, i.student_adv, i.teacher_adv, i.accepted, c)


@register_objective("dat", needs={"student_dat_adv"}, summary="DAT: CE on the student's own Q(x'), made online (Eq. 5)")
def _dat(i: ObjectiveInputs, c: DistillConfig) -> LossDict:
    return dat_loss(i.student_clean, i.student_dat_adv, i.labels, c)


@register_objective("dat+dad", needs={"teacher_clean", "student_adv", "teacher_adv", "student_dat_adv"},
                    summary="DAD plus DAT's term on the student's own Q(x') (App. C)")
def _dat_dad(i: ObjectiveInputs, c: DistillConfig) -> LossDict:
    return dat_dad_loss(i.student_clean, i.teacher_clean, i.labels, i.student_adv, i.teacher_adv, i.accepted,
                        i.student_dat_adv, c)


# name -> function, for callers that want the plain mapping.
OBJECTIVES: dict[str, ObjectiveFn] = {name: o.fn for name, o in _REGISTRY.items()}
