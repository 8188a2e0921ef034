"""The PACS experiment's report: the teacher (val and test), Q (PSNR, codebook use), the attack grid (a plot),
the students (mean ± sd over seeds), paired tests on the same test images, a bar chart with error bars, a
sample grid, wall times; and run records so that the control plane catalogs every run."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from dad_core import get_preset
from dad_core.attack import attack_from_dict
from experiments.stats import PairedResult, paired_difference
from schemas import sample_store as ss
from services.evaluator.results import RESULTS_DIR, read_predictions
from services.sample_store.reader import load_manifest, open_sample_set

# A - B comparisons reported with paired tests: the claim (DAD vs KD, vs CE) and the controls.
COMPARISONS = (("dad", "kd"), ("dad", "ce"), ("dad", "dad-no-attack"), ("dad", "dad-no-filter"),
               ("dad", "dad-no-filter-matched"), ("dad-no-filter", "dad-no-filter-matched"), ("dad", "dat"), ("kd", "ce"))


# ----------------------------------------------------------------------------- reading results

@dataclass(frozen=True)
class Evaluation:
    """An evaluation run's latest result: top-1 per suite, and where its per-image predictions are."""

    top1: dict[str, float]
    result_path: Path

    def correctness(self) -> dict[str, dict[str, int]]:
        """{suite: {source_id: 1 if right else 0}} from the evaluation's predictions."""
        out: dict[str, dict[str, int]] = {}
        for row in read_predictions(str(self.result_path)).to_pylist():
            out.setdefault(row["suite"], {})[row["source_id"]] = int(row["label"] == row["prediction"])
        return out


def load_evaluation(eval_dir: Path) -> Evaluation:
    path = max((eval_dir / RESULTS_DIR).glob("*.json"), key=lambda p: p.stat().st_mtime)
    result = json.loads(path.read_text())
    return Evaluation({m["suite"]: m["value"] for m in result["metrics"] if m["metric"] == "top1"}, path)


def top1(eval_dir: Path) -> dict[str, float]:
    return load_evaluation(eval_dir).top1


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


# ----------------------------------------------------------------------------- tables

def student_table(evals: dict[str, Evaluation], students: dict[str, tuple[str, int, Path]], domains: tuple[str, ...],
                  teacher: dict[str, float]) -> tuple[str, dict]:
    shifted = [d for d in domains if d != "photo"]
    by_variant: dict[str, dict[str, list[float]]] = {}
    for name, (variant, _, _) in students.items():
        t = evals[name].top1
        for d in domains:
            by_variant.setdefault(variant, {}).setdefault(d, []).append(t.get(d, float("nan")))
    head = "| model | seeds | " + " | ".join(domains) + " | shift avg |\n|---|---|" + "---|" * (len(domains) + 1) + "\n"
    rows = ["| teacher (all domains) | 1 | " + " | ".join(f"{teacher.get(d, float('nan')):.1f}" for d in domains)
            + f" | {np.mean([teacher.get(d, np.nan) for d in shifted]):.1f} |"]
    summary: dict[str, Any] = {"teacher": teacher}
    for variant, per_domain in by_variant.items():
        n = len(next(iter(per_domain.values())))
        shift_avg = [float(np.mean([per_domain[d][i] for d in shifted])) for i in range(n)]
        rows.append(f"| `{variant}` | {n} | " + " | ".join(mean_sd(per_domain[d]) for d in domains)
                    + f" | {mean_sd(shift_avg)} |")
        summary[variant] = {d: per_domain[d] for d in domains} | {"shift_avg": shift_avg}
    return head + "\n".join(rows) + "\n", summary


def paired_tests(evals: dict[str, Evaluation], students: dict[str, tuple[str, int, Path]],
                 domains: tuple[str, ...], comparisons=COMPARISONS) -> tuple[str, dict]:
    """Paired bootstrap intervals and permutation p-values for the (A, B) variant pairs in `comparisons`, on the
    seeds both have, per domain and the shift average."""
    by_variant: dict[str, dict[int, dict[str, dict[str, int]]]] = {}
    for name, (variant, seed, _) in students.items():
        by_variant.setdefault(variant, {})[seed] = evals[name].correctness()
    shifted = tuple(d for d in domains if d != "photo")
    columns = (*domains, "shift avg")
    head = "| A − B (points) | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns) + "\n"
    rows, out = [], {}
    for a, b in comparisons:
        if a not in by_variant or b not in by_variant:
            continue
        seeds = sorted(set(by_variant[a]) & set(by_variant[b]))

        def arrays(variant: str, domain: str) -> np.ndarray:
            ids = sorted(by_variant[a][seeds[0]][domain])
            return np.array([[by_variant[variant][s][domain][i] for i in ids] for s in seeds])

        cells, results = [], {}
        for column in columns:
            ds = shifted if column == "shift avg" else (column,)
            r = paired_difference([arrays(a, d) for d in ds], [arrays(b, d) for d in ds])
            results[column] = r
            cells.append(_cell(r))
        rows.append(f"| `{a}` − `{b}` | " + " | ".join(cells) + " |")
        out[f"{a} - {b}"] = {c: {"difference": r.difference, "ci95": r.ci95, "p_value": r.p_value,
                                 "per_seed": r.per_seed, "seeds": len(seeds)} for c, r in results.items()}
    return head + "\n".join(rows) + "\n", out


def _cell(r: PairedResult) -> str:
    mark = "**" if r.significant() else ""
    return f"{mark}{r.difference:+.1f}{mark} [{r.ci95[0]:+.1f}, {r.ci95[1]:+.1f}] p={r.p_value:.3f}"


# ----------------------------------------------------------------------------- figures

def bar_chart(summary: dict, domains: tuple[str, ...], path: Path,
              title: str = "PACS: students trained on photo only") -> None:
    """Grouped bars per domain and the shift average, mean ± sd over seeds; the teacher in grey when present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [k for k in summary if k != "teacher"]
    bars = ["teacher", *variants] if "teacher" in summary else variants
    columns = (*domains, "shift_avg")
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(columns), 3.8))
    width = 0.8 / len(bars)
    teacher_shift = float(np.mean([summary["teacher"][d] for d in domains if d != "photo"])) if "teacher" in summary \
        else None
    for i, name in enumerate(bars):
        if name == "teacher":
            means = [summary["teacher"].get(d, teacher_shift) for d in domains] + [teacher_shift]
            errs = [0.0] * len(columns)
        else:
            means = [float(np.mean(summary[name][c])) for c in columns]
            errs = [float(np.std(summary[name][c], ddof=1)) if len(summary[name][c]) > 1 else 0.0 for c in columns]
        ax.bar(np.arange(len(columns)) + i * width, means, width, yerr=errs, capsize=2, label=name,
               color="#999999" if name == "teacher" else None)
    ax.set_xticks(np.arange(len(columns)) + width * (len(bars) - 1) / 2, [c.replace("_", " ") for c in columns])
    ax.set_ylabel("top-1 (%), mean ± sd over seeds")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def grid_plot(grid: list[dict], path: Path, image_size: int) -> None:
    """Acceptance and photo-val top-1 against the step's L2 size, one line per norm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for norm, marker in (("l2", "o"), ("linf", "s")):
        points = sorted((p for p in grid if p["norm"] == norm), key=lambda p: p["l2_size"])
        if not points:
            continue
        x = [p["l2_size"] for p in points]
        axes[0].plot(x, [100 * p["acceptance_rate"] for p in points], marker=marker, label=norm)
        axes[1].plot(x, [100 * p["photo_val_top1"] for p in points], marker=marker, label=norm)
    for ax, label in zip(axes, ("Q(x') accepted (%)", "DAD student, photo val top-1 (%)")):
        ax.set_xscale("log")
        ax.set_xlabel(f"step size as L2 norm at {image_size} px")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
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


# ----------------------------------------------------------------------------- records and text

def write_run_records(out: Path, runs: list[tuple[str, str, str | None]], config: dict | None = None,
                      message: str | None = None, module: str = "experiments.pacs") -> None:
    """Run records so the control plane's catalog lists the experiment's runs (see record_finished_run); each
    run's config is `{"experiment": module, "run": id}` unless `config` is given."""
    from services.api.store import Store, record_finished_run

    store = Store(str(out / "store"))
    for run_id, kind, set_id in runs:
        existing = store.read_run_record(run_id)
        if existing is not None and existing.job is not None:
            continue  # a job started through services.api.launch: its real config and status are recorded
        started, finished = stage_times(out / "stages" / f"{run_id}.json")
        record_finished_run(store, run_id, kind, ["python", "-m", module, "--out", str(out)],
                            config or {"experiment": module, "run": run_id}, sample_set_id=set_id,
                            message=message or f"made by {module}", started_at=started, finished_at=finished)


def stage_times(record: Path) -> tuple[datetime | None, datetime | None]:
    """When a stage (its run folder has the record's name) started and finished, so the catalog shows how long it
    took; records older than `finished_at` use the file's mtime (written when the stage finished)."""
    if not record.exists():
        return None, None
    r = json.loads(record.read_text())
    if not r.get("finished"):
        return None, None
    end = datetime.fromtimestamp(r.get("finished_at") or record.stat().st_mtime, timezone.utc)
    return end - timedelta(seconds=float(r.get("seconds", 0.0))), end


def attack_summary(attack: dict) -> str:
    """One line saying which attack made a sample set, from its manifest (old manifests read as they were made)."""
    a = attack_from_dict(attack)
    bound = f"{a.norm} ball of radius {a.epsilon}" if a.epsilon is not None else "no bound"
    return (f"{a.steps} step(s) of {a.step_size} ({a.direction} direction), {bound}, "
            f"random start with p {a.random_start:g}")


def l2_size(norm: str, step: float, image_size: int) -> float:
    """The L2 norm of one step: the step itself for L2, step * sqrt(pixels) for a sign (L-inf) step."""
    return step if norm == "l2" else step * float(np.sqrt(3 * image_size * image_size))


def findings(summary: dict, tests: dict, domains: tuple[str, ...]) -> list[str]:
    """Plain sentences on what the numbers do and do not show (generated, so they never drift from the table)."""
    lines = []
    shifted = [d for d in domains if d != "photo"]
    teacher = summary["teacher"]
    variants = [k for k in summary if k != "teacher"]
    beats = all(teacher[d] > max(np.mean(summary[v][d]) for v in variants) for d in shifted)
    line = f"- Teacher beats every student on every shifted domain: {'yes' if beats else 'NO'}"
    if "ce" in summary:
        ce = float(np.mean(summary["ce"]["photo"]))
        line += (f"; on photo it scores {teacher['photo']:.1f} vs the CE student's {ce:.1f} "
                 f"({'at least as good' if teacher['photo'] >= ce else 'WORSE'})")
    lines.append(line + ".")
    for key, label in (("dad - kd", "DAD vs KD"), ("dad - ce", "DAD vs CE"),
                       ("dad - dad-no-attack", "the adversarial step (DAD vs DAD on Q(x))"),
                       ("dad - dad-no-filter", "the teacher-correct filter (DAD vs DAD on every Q(x'))"),
                       ("dad - dad-no-filter-matched", "the filter at equal count (DAD vs as many Q(x') per class, "
                                                       "unfiltered)")):
        if key not in tests:
            continue
        r = tests[key]["shift avg"]
        verdict = ("a significant gain" if r["ci95"][0] > 0 else "a significant loss" if r["ci95"][1] < 0
                   else "not significant: the interval includes 0")
        lines.append(f"- {label}, shift average: {r['difference']:+.1f} points (95% CI {r['ci95'][0]:+.1f} to "
                     f"{r['ci95'][1]:+.1f}, p = {r['p_value']:.3f}, {r['seeds']} seed{'s' if r['seeds'] > 1 else ''}): {verdict}.")
    return lines


def write_report(out: Path, *, teacher: Path, vq: Path, samples: Path, grid: list[dict],
                 students: dict[str, tuple[str, int, Path]], evals: dict[str, Path], domains: tuple[str, ...],
                 timings: dict, total_s: float, args: dict) -> dict:
    image_size = int(args["image_size"])
    manifest_uri = str(samples / "manifest.json")
    manifest = load_manifest(manifest_uri)
    st = manifest.statistics
    for point in grid:
        m = load_manifest(str(Path(point["samples"]) / "manifest.json")).statistics
        point.update(acceptance_rate=m.acceptance_rate, accepted=m.accepted, clean=m.clean,
                     l2_size=l2_size(point["norm"], point["step_size"], image_size))
    loaded = {name: load_evaluation(path) for name, path in evals.items()}
    teacher_test, teacher_val = loaded["teacher"].top1, loaded["teacher-val"].top1
    table, summary = student_table(loaded, students, domains, teacher_test)
    tests_md, tests = paired_tests(loaded, students, domains)
    bar_chart(summary, domains, out / "results_bar.png")
    sample_grid(manifest_uri, out / "samples_grid.png")
    if any("photo_val_top1" in p for p in grid):
        grid_plot(grid, out / "attack_grid.png", image_size)
    q = json.loads((vq / "report.json").read_text())
    set_id = samples.name
    write_run_records(out, [(teacher.name, "train", None)]
                      + [(run.name, "train", set_id) for _, _, run in students.values()]
                      + [(p.name, "eval", None) for p in evals.values()])
    attack = attack_summary(manifest.config.attack)
    dat = get_preset(manifest.config.preset).dat  # the students' own attack (objective dat): preset section dat
    dat_line = attack_summary({k: v for k, v in vars(dat).items() if k != "student_mode"}) + \
        f", student in {dat.student_mode} mode"
    teacher_domains = [d for d in domains if d in teacher_val]  # its val covers the PACS domains only
    teacher_rows = ["| split | " + " | ".join(teacher_domains) + " |", "|---|" + "---|" * len(teacher_domains)]
    for split, values in (("val", teacher_val), ("test", teacher_test)):
        teacher_rows.append(f"| {split} | " + " | ".join(f"{values.get(d, float('nan')):.1f}"
                                                        for d in teacher_domains) + " |")
    found = findings(summary, tests, domains)
    report = {"table": summary, "paired_tests": tests, "findings": found, "teacher_val": teacher_val,
              "teacher_test": teacher_test, "attack": manifest.config.attack, "attack_summary": attack,
              "dat_attack": dat_line, "grid": grid, "acceptance_rate": st.acceptance_rate, "accepted": st.accepted,
              "rejected": st.rejected.model_dump(), "clean": st.clean, "vq_psnr_db": q["psnr_db"],
              "vq_mean_image_psnr_db": q.get("mean_image_psnr_db"), "vq_code_usage": q.get("code_usage"),
              "timings": timings, "total_s": total_s, "args": args}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))

    lines = ["# PACS experiment", "", "## Students (test splits; photo only in training)", "", table,
             "## Paired tests on the same test images", "",
             "A − B in top-1 points, averaged over seeds; [95% interval: two-level bootstrap over seeds and images]; "
             "p: paired sign-flip permutation test; **bold**: the interval excludes 0.", "", tests_md,
             "## What this shows", "", *found, "",
             "## Teacher (trained on every domain's train split)", "", *teacher_rows, "",
             "## Q", "", "Reconstruction PSNR (dB) per val split (the training set's mean image scores "
             + ", ".join(f"{k} {v:.1f}" for k, v in (q.get("mean_image_psnr_db") or {}).items()) + "): "
             + ", ".join(f"{k} {v:.2f}" for k, v in q["psnr_db"].items()) + ".", ""]
    if q.get("code_usage"):
        lines += ["Codebook use: " + ", ".join(f"{k} {100 * v['used']:.0f}% of {v['codebook_size']} codes "
                                               f"(perplexity {v['perplexity']:.0f})" for k, v in q["code_usage"].items())
                  + ".", ""]
    lines += ["## Attack", "", f"Q(x') of the students' sample set: {attack}. Acceptance (teacher still right): "
              f"{st.acceptance_rate:.1%} ({st.accepted} of {st.clean}).", "", f"DAT students' own attack: {dat_line}.", ""]
    if any("photo_val_top1" in p for p in grid):
        lines += ["Grid (declared before any run; chosen by the DAD student's photo VAL top-1, "
                  f"{args['grid_epochs']} epochs, seed 0):", "",
                  "| norm | step | L2 size | accepted | photo val top-1 |", "|---|---|---|---|---|"]
        lines += [f"| {p['norm']} | {p['step_size']:g} | {p['l2_size']:.2f} | {p['acceptance_rate']:.1%} | "
                  f"{100 * p['photo_val_top1']:.1f} |" for p in grid]
        lines += ["", "![attack grid](attack_grid.png)", ""]
    lines += ["## Wall time", "", "| stage | seconds | reused |", "|---|---|---|"]
    lines += [f"| {k} | {v['seconds']:.0f} | {'yes' if v['reused'] else ''} |" for k, v in timings.items()]
    made = sum(v["seconds"] for v in timings.values() if not v["reused"])
    lines += ["", f"This invocation: {total_s / 60:.1f} min ({made / 60:.1f} min in stages it ran).", "",
              "![results](results_bar.png)", "", "![samples](samples_grid.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    publish_report(out, samples.name)
    return report


REPORT_FILES = ("report.md", "report.json", "results_bar.png", "attack_grid.png", "samples_grid.png")


def publish_report(out: Path, set_id: str, run_id: str = "pacs-report",
                   files: dict[str, str] | None = None, message: str = "the PACS experiment's report (report.md, figures)",
                   module: str = "experiments.pacs") -> str:
    """Copy a report into the store as a run of its own (`pacs-report`), so the control plane shows it: its
    page links report.md/json and shows the figures; the students' results are in its results table already.
    `files` maps a file in `out` to its name in the run (default: REPORT_FILES, same names)."""
    import shutil

    folder = out / "store" / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    for source, name in (files or {f: f for f in REPORT_FILES}).items():
        if (out / source).exists():
            shutil.copyfile(out / source, folder / name)
    write_run_records(out, [(run_id, "eval", set_id)], config={"experiment": module, "report": True}, message=message,
                      module=module)
    track_report(folder, set_id, run_id, module)
    return run_id


def track_report(folder: Path, set_id: str, run_id: str, module: str) -> str | None:
    """With MLFLOW_TRACKING_URI set, the report as an MLflow run in the experiment of its sample set (`dad/<set>`,
    where the set's generate and train runs are): report.md/json and the figures as artifacts, and each
    variant's mean top-1 per domain as metrics. Returns the MLflow run id (None: no tracking)."""
    from services.tracking import EXPERIMENT_PREFIX, Tracker, tracking_uri

    if tracking_uri() is None:
        return None
    tracker = Tracker.start(EXPERIMENT_PREFIX + set_id, f"report {run_id}",
                            {"dad.kind": "report", "dad.sample_set": set_id, "dad.experiment": module})
    if not tracker.active:
        return None
    report = folder / "report.json"
    if report.exists():
        table = json.loads(report.read_text()).get("table", {})
        tracker.log_metrics({f"{variant}.{domain}.top1": float(np.mean(v)) for variant, domains in table.items()
                             for domain, v in domains.items() if isinstance(v, (list, int, float))})
    tracker.log_files({p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".md", ".json", ".png")
                       and p.name not in ("run.json", "status.json")})
    tracker.end(ok=True)
    return tracker.run_id
