"""One typed config per job, defined once: the API validates run submissions with these models, and each
job reads them from `--config <file>` or builds them from its flags (generated from the same fields).

    GenerateJobConfig  python -m services.generator
    TrainJobConfig     python -m services.trainer
    EvalJobConfig      python -m services.evaluator
    FitQJobConfig      python -m services.vq_trainer

`*Settings` are the fields a caller of the API chooses; `*JobConfig` adds where the job reads and writes.
"""
from schemas.jobs.checks import JobChecks, install_checks, installed_checks
from schemas.jobs.evaluate import EvalJobConfig, EvalSettings
from schemas.jobs.fit_q import FitQJobConfig
from schemas.jobs.generate import GenerateJobConfig, GenerateSettings
from schemas.jobs.train import TrainJobConfig, TrainSettings

JOB_CONFIGS = {"generate": GenerateJobConfig, "train": TrainJobConfig, "eval": EvalJobConfig,
               "fit-q": FitQJobConfig}

__all__ = ["JobChecks", "install_checks", "installed_checks", "EvalJobConfig", "EvalSettings", "FitQJobConfig",
           "GenerateJobConfig", "GenerateSettings", "TrainJobConfig", "TrainSettings", "JOB_CONFIGS"]
