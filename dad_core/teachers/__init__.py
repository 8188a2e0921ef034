"""Teachers (phi): frozen classifiers over [0, 1] pixels with input gradients."""
from dad_core.teachers.base import Teacher
from dad_core.teachers.factory import TeacherConfig, create_teacher, list_teachers, register_teacher
from dad_core.teachers.openclip import OpenCLIPTeacher
from dad_core.teachers.timm_teacher import TimmTeacher

__all__ = ["Teacher", "TeacherConfig", "list_teachers", "register_teacher", "create_teacher", "OpenCLIPTeacher", "TimmTeacher"]
