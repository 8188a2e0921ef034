"""Teachers (phi): frozen classifiers over [0, 1] pixels with input gradients."""
from dad_core.teachers.base import Teacher
from dad_core.teachers.factory import TEACHER_KINDS, TeacherConfig, create_teacher
from dad_core.teachers.openclip import OpenCLIPTeacher
from dad_core.teachers.timm_teacher import TimmTeacher

__all__ = ["Teacher", "TeacherConfig", "TEACHER_KINDS", "create_teacher", "OpenCLIPTeacher", "TimmTeacher"]
