"""How the generator spreads over the Ray cluster: actors (one teacher + Q each), their CPUs/GPUs, read-ahead."""
from __future__ import annotations

from dataclasses import dataclass

from services.generator.config import GeneratorConfig
from services.generator.job import GenerationError


@dataclass(frozen=True)
class Resources:
    actors: int
    gpus_per_actor: float
    cpus_per_actor: float
    torch_threads: int
    prefetch_shards: int       # shards read ahead of the actors


def plan_resources(config: GeneratorConfig) -> Resources:
    """How many actors of what size, and how far to read ahead, checked against the connected cluster.

    Reads (JPEG decode) are what starves a GPU actor, so the read-ahead grows with the CPUs the actors leave.
    """
    import ray

    total = ray.cluster_resources()
    gpus, cpus = total.get("GPU", 0.0), total.get("CPU", 0.0)
    gpa = config.gpus_per_actor if config.gpus_per_actor is not None else (1.0 if gpus else 0.0)
    n = config.num_actors or (max(1, int(gpus // gpa)) if gpa else 1)
    if gpa and n * gpa > gpus:
        raise GenerationError(f"{n} actors x {gpa} GPUs need {n * gpa:g} GPUs; the cluster has {gpus:g}")
    need = n * config.cpus_per_actor + max(config.read_cpus, config.write_cpus)
    if need > cpus:
        raise GenerationError(f"{n} actors x {config.cpus_per_actor:g} CPUs leave no CPU for read/write tasks "
                              f"(cluster has {cpus:g} CPUs): lower --cpus-per-actor or --num-actors")
    threads = config.torch_threads or max(1, round(config.cpus_per_actor))
    spare = cpus - n * config.cpus_per_actor
    prefetch = config.prefetch_shards
    if prefetch is None:
        prefetch = max(2, int(spare / max(config.read_cpus, 0.25) / 2))
    return Resources(n, gpa, config.cpus_per_actor, threads, prefetch)
