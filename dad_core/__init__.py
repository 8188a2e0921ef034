"""dad_core: Discrete Adversarial Distillation as a pure library (no Ray, no web, no I/O at import).

Reads like Sec. 3 of the paper: a teacher phi, a discretizer Q, the attack that makes Q(x'), the losses.
"""
from dad_core.attack import AttackConfig, DADBatch, Judgement, generate_dad_batch, judge
from dad_core.dat import DATConfig, dat_adversarial
from dad_core.discretizers import Discretizer, DiscretizerConfig, IdentityDiscretizer, create_discretizer
from dad_core.fingerprint import module_checksum
from dad_core.images import check_images, check_labels
from dad_core.losses import DistillConfig
from dad_core.perturbation import DIAGNOSTICS, perturbation_diagnostics
from dad_core.presets import Preset, get_preset, list_presets, parse_overrides
from dad_core.students import PixelSpaceClassifier, create_student, init_student
from dad_core.teachers import OpenCLIPTeacher, Teacher, TeacherConfig, TimmTeacher, create_teacher

__all__ = [
    "AttackConfig", "DADBatch", "Judgement", "generate_dad_batch", "judge", "DATConfig", "dat_adversarial",
    "Discretizer", "DiscretizerConfig", "IdentityDiscretizer", "create_discretizer",
    "module_checksum", "check_images", "check_labels", "DistillConfig", "DIAGNOSTICS", "perturbation_diagnostics",
    "Preset", "get_preset", "list_presets", "parse_overrides",
    "PixelSpaceClassifier", "create_student", "init_student",
    "OpenCLIPTeacher", "Teacher", "TeacherConfig", "TimmTeacher", "create_teacher",
]
