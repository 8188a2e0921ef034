"""The generator's MLflow run (services.tracking; nothing without MLFLOW_TRACKING_URI): one run per generator
job in the experiment `dad/<set>`, which the set's training runs nest under."""
from __future__ import annotations

from services.generator.config import GeneratorConfig
from services.tracking import EXPERIMENT_PREFIX, Tracker, tracking_uri


def track_generation(config: GeneratorConfig, result) -> Tracker:
    """Log a finished job: its settings and resolved preset as params; acceptance, throughput and counts as
    metrics; the manifest as an artifact. Returns the tracker (inactive without a URI)."""
    if tracking_uri() is None:
        return Tracker(None)
    manifest, name = result.manifest, result.set_uri.rstrip("/").rsplit("/", 1)[-1]
    tracker = Tracker.start(EXPERIMENT_PREFIX + name, f"generate {name}",
                            {"dad.kind": "generate", "dad.sample_set": name, "dad.set_uri": result.set_uri})
    if not tracker.active:
        return tracker
    settings = {k: v for k, v in config.model_dump(mode="json").items() if k not in ("storage_options", "ray_address")}
    tracker.log_params({**settings, "preset_config": manifest.config.preset_config,
                        "num_classes": len(manifest.config.class_names), "set_fingerprint": manifest.config.fingerprint})
    stats, status = manifest.statistics, result.status
    metrics = {"acceptance_rate": stats.acceptance_rate, "seen": stats.seen, "clean": stats.clean,
               "accepted": stats.accepted, "rejected": stats.rejected.total, "errored": stats.errored.total,
               "teacher_clean_accuracy": stats.teacher_clean_correct / stats.clean if stats.clean else None,
               "num_rows": manifest.num_rows, "shards": len(manifest.shards), "resumed_shards": result.resumed_shards,
               "startup_s": result.startup_s, "run_s": result.run_s}
    if status is not None:
        metrics.update(samples_per_s=status.samples_per_s, elapsed_s=status.elapsed_s)
    # Attack diagnostics (issue 22, section 1) land in the manifest's statistics; every numeric field is logged.
    for key, value in manifest.statistics.model_dump().items():
        if isinstance(value, (int, float)) and key not in metrics:
            metrics[key] = value
    if stats.perturbation is not None:  # what the attack changed: mean and quantiles of each measure
        summary = stats.perturbation.summary()
        for name, m in summary.metrics.items():
            metrics.update({f"attack.{name}.mean": m.mean, **{f"attack.{name}.{q}": v for q, v in m.quantiles.items()}})
        if summary.warning:
            tracker.set_tags({"dad.attack_warning": summary.warning})
    tracker.log_metrics(metrics)
    tracker.log_files({"manifest.json": manifest.model_dump_json(indent=2).encode()})
    tracker.end(ok=True)
    return tracker
