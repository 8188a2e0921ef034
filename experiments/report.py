"""The experiment's report: results table (mean ± sd over seeds), bar chart, sample grid, acceptance rate,
VQ reconstruction PSNR and wall time per stage; plus run records so the control plane catalogs every run."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dad_core import get_preset
from dad_core.attack import attack_from_dict
from schemas import sample_store as ss
from services.evaluator.results import list_results
from services.sample_store.reader import load_manifest, open_sample_set


def _top1(store: Path, run_id: str) -> dict[str, float]:
    results = list_results(str(store / "runs" / f"eval-{run_id}"))
    latest = results[-1]
    return {m["suite"]: m["value"] for m in latest["metrics"] if m["metric"] == "top1"}


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def results_table(store: Path, runs: dict[str, tuple[str, int]], domains: tuple[str, ...]) -> tuple[str, dict]:
    by_objective: dict[str, dict[str, list[float]]] = {}
    for run_id, (objective, _) in runs.items():
        top1 = _top1(store, run_id)
        for d in domains:
            by_objective.setdefault(objective, {}).setdefault(d, []).append(top1.get(d, float("nan")))
    teacher = _top1(store, "pacs-teacher")
    shifted = [d for d in domains if d != "photo"]
    head = "| model | seeds | " + " | ".join(domains) + " | shift avg |\n|---|---|" + "---|" * (len(domains) + 1) + "\n"
    rows = ["| teacher (all domains) | 1 | " + " | ".join(f"{teacher.get(d, float('nan')):.1f}" for d in domains)
            + f" | {np.mean([teacher.get(d, np.nan) for d in shifted]):.1f} |"]
    summary = {"teacher": teacher}
    for objective, per_domain in by_objective.items():
        n = len(next(iter(per_domain.values())))
        shift_avg = [float(np.mean([per_domain[d][i] for d in shifted])) for i in range(n)]
        rows.append(f"| student `{objective}` (photo only) | {n} | "
                    + " | ".join(_mean_sd(per_domain[d]) for d in domains) + f" | {_mean_sd(shift_avg)} |")
        summary[objective] = {d: per_domain[d] for d in domains} | {"shift_avg": shift_avg}
    return head + "\n".join(rows) + "\n", summary


def bar_chart(summary: dict, domains: tuple[str, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objectives = [k for k in summary if k != "teacher"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(domains), 3.6))
    width = 0.8 / (len(objectives) + 1)
    for i, obj in enumerate(["teacher", *objectives]):
        vals = [summary[obj][d] if obj == "teacher" else summary[obj][d] for d in domains]
        means = [v if obj == "teacher" else float(np.mean(v)) for v in vals]
        errs = [0 if obj == "teacher" or len(v) < 2 else float(np.std(v, ddof=1)) for v in vals]
        ax.bar(np.arange(len(domains)) + i * width, means, width, yerr=errs, capsize=2, label=obj,
               color="#999999" if obj == "teacher" else None)
    ax.set_xticks(np.arange(len(domains)) + width * len(objectives) / 2, domains)
    ax.set_ylabel("top-1 (%)")
    ax.set_title("PACS: students trained on photo only")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sample_grid(manifest_uri: str, path: Path, n: int = 8, scale: int = 2) -> None:
    """Rows of clean | Q(x) | Q(x') with the teacher's label on each (green: accepted)."""
    ds = open_sample_set(manifest_uri, kinds=ss.KINDS, accepted_only=False)
    names = ds.class_names
    by_source: dict[str, dict[str, dict]] = {}
    kinds = ds.index.column(ss.COL_KIND).to_pylist()
    sources = ds.index.column(ss.COL_SOURCE_ID).to_pylist()
    step = max(1, len(set(sources)) // n)
    wanted = sorted(set(sources))[::step][:n]
    for i, (src, kind) in enumerate(zip(sources, kinds)):
        if src in wanted:
            by_source.setdefault(src, {})[kind] = ds[i]
    columns = [k for k in ("clean", "discretized", "adversarial") if any(k in v for v in by_source.values())]
    size = ds[0]["image"].shape[-1] * scale
    cell_h = size + 14
    grid = Image.new("RGB", (len(columns) * size, len(wanted) * cell_h + 14), "white")
    draw = ImageDraw.Draw(grid)
    for c, kind in enumerate(columns):
        draw.text((c * size + 2, 1), {"clean": "x", "discretized": "Q(x)", "adversarial": "Q(x')"}[kind], fill="black")
    for r, src in enumerate(wanted):
        for c, kind in enumerate(columns):
            item = by_source.get(src, {}).get(kind)
            if item is None:
                continue
            img = Image.fromarray((item["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            grid.paste(img.resize((size, size), Image.NEAREST), (c * size, 14 + r * cell_h))
            ok = item["teacher_prediction"] == item["label"]
            draw.text((c * size + 2, 14 + r * cell_h + size), names[item["teacher_prediction"]][:12],
                      fill="#087f23" if ok else "#c62828")
    grid.save(path)


def write_run_records(out: Path, runs: list[tuple[str, str, str | None]]) -> None:
    """Run records so the control plane's catalog lists the experiment's runs (see record_finished_run)."""
    from services.api.store import Store, record_finished_run

    store = Store(str(out / "store"))
    for run_id, kind, set_id in runs:
        record_finished_run(store, run_id, kind, ["python", "-m", "experiments.pacs", "--out", str(out)],
                            {"experiment": "pacs", "run": run_id}, sample_set_id=set_id,
                            message="made by experiments.pacs")


def attack_summary(attack: dict) -> str:
    """One line saying which attack made a sample set, from its manifest (old manifests read as they were made)."""
    a = attack_from_dict(attack)
    bound = f"{a.norm} ball of radius {a.epsilon}" if a.epsilon is not None else "no bound"
    return (f"{a.steps} step(s) of {a.step_size} ({a.direction} direction), {bound}, "
            f"random start with p {a.random_start:g}")


def write_report(out: Path, runs: dict[str, tuple[str, int]], domains: tuple[str, ...], timings: dict) -> None:
    store = out / "store"
    manifest_uri = str(store / "sample-sets" / "pacs-photo" / "manifest.json")
    manifest = load_manifest(manifest_uri)
    st = manifest.statistics
    table, summary = results_table(store, runs, domains)
    bar_chart(summary, domains, out / "results_bar.png")
    sample_grid(manifest_uri, out / "samples_grid.png")
    vq = json.loads((out / "vq" / "report.json").read_text())
    write_run_records(out, [("pacs-teacher", "train", None)]
                      + [(r, "train", "pacs-photo") for r in runs]
                      + [(f"eval-{r}", "eval", None) for r in ["pacs-teacher", *runs]])
    attack = attack_summary(manifest.config.attack)
    dat = get_preset(manifest.config.preset).dat  # the students' own attack (objective dat): preset section dat
    dat_line = attack_summary({k: v for k, v in vars(dat).items() if k != "student_mode"}) + \
        f", student in {dat.student_mode} mode"
    report = {"table": summary, "attack": manifest.config.attack, "attack_summary": attack, "dat_attack": dat_line,
              "acceptance_rate": st.acceptance_rate, "accepted": st.accepted,
              "rejected": st.rejected.model_dump(), "clean": st.clean, "vq_psnr_db": vq["psnr_db"],
              "timings_s": timings}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    lines = ["# PACS experiment", "", table, f"DAD samples Q(x'): {attack}.", "",
             f"DAT students' own attack: {dat_line}.", "", f"Acceptance rate of Q(x') (teacher still right): "
             f"{st.acceptance_rate:.1%} ({st.accepted} of {st.clean})", "",
             "VQ reconstruction PSNR (dB) on val splits: "
             + ", ".join(f"{k} {v:.2f}" for k, v in vq["psnr_db"].items()), "", "Wall time per stage (s):", ""]
    lines += [f"- {k}: {v}" for k, v in timings.items()]
    stages = sum(v for k, v in timings.items() if not k.startswith("total"))
    lines += [f"- sum of stages: {stages:.0f} s ({stages / 60:.1f} min)"]
    lines += ["", "![results](results_bar.png)", "", "![samples](samples_grid.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
