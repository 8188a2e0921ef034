"""The DAD sample generator: a Ray job that writes a sample set once per (teacher, discretizer, dataset).

`python -m services.generator --help` for the command line; `run_generation(GeneratorConfig(...))` from
Python on a connected Ray cluster.
"""
from services.generator.config import GeneratorConfig, default_set_name, generation_fingerprint

__all__ = ["GeneratorConfig", "default_set_name", "generation_fingerprint", "run_generation", "GenerationError",
           "GenerationResult", "prepare_job"]


def __getattr__(name):  # the pipeline imports Ray and torch: only when asked for
    if name in ("run_generation", "GenerationError", "GenerationResult", "prepare_job"):
        from services.generator import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
