"""The PACS experiment's report: the teacher (val and test), the Qs (PSNR, codebook use), the attack grid with
its diagnostics (a plot), the mechanism check, the students (mean ± sd over seeds), the declared contrasts
(t-interval over seeds, two-level bootstrap, Holm), a bar chart with error bars, a sample grid, wall times; and
run records so that the control plane catalogs every run."""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from dad_core.attack import attack_from_dict
from experiments.stats import PairedResult, holm, paired_difference, seed_t_test
from schemas import sample_store as ss
from services.evaluator.results import RESULTS_DIR, read_predictions
from services.sample_store.reader import load_manifest, open_sample_set

SHIFTS = ("art_painting", "cartoon")  # the shift average: the primary contrasts' measure
# A - B contrasts, declared before the run (README → PACS). Primary: DAD over KD, and the attack over a second
# pass through Q. The rest are secondary, each isolating one part of DAD (a contrast whose variants were not
# trained is left out).
PRIMARY = (("dad", "kd"), ("dad", "dad-qq"))
SECONDARY = (("dad", "ce"), ("kd", "ce"), ("dad-qq", "kd"), ("dad", "dad-random-delta"), ("dad", "dad-no-filter"),
             ("dad", "dad-filter"), ("dad", "dad-no-filter-matched"), ("dad-no-filter", "dad-no-filter-matched"),
             ("dad", "dad-photo-q"), ("dad", "dad-no-attack"), ("dad", "dat"))
COMPARISONS = PRIMARY + SECONDARY
LABELS = {("dad", "kd"): "DAD vs KD", ("dad", "dad-qq"): "the attack (DAD vs Q(Q(x)) in place of Q(x'))",
          ("dad", "ce"): "DAD vs CE", ("kd", "ce"): "KD vs CE", ("dad-qq", "kd"): "Q(Q(x)) rows vs none (KD)",
          ("dad", "dad-random-delta"): "the adversarial direction (DAD vs a random δ of the same norm)",
          ("dad", "dad-no-filter"): "the filter (DAD vs every Q(x'))",
          ("dad", "dad-filter"): "the filter (DAD without it vs with it)",
          ("dad", "dad-no-filter-matched"): "DAD vs no filter at the filter's count",
          ("dad-no-filter", "dad-no-filter-matched"): "the count of Q(x') (no filter: all vs the filter's count)",
          ("dad", "dad-photo-q"): "Q's data (three domains vs photo only)",
          ("dad", "dad-no-attack"): "δ and the second pass through Q (DAD vs stored Q(x))",
          ("dad", "dat"): "DAD vs DAT"}


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

def _shifts(domains: tuple[str, ...], shifts: tuple[str, ...] | None) -> tuple[str, ...]:
    """The domains the shift average is over: `shifts` present in `domains`, or every domain but photo."""
    return tuple(d for d in domains if d != "photo") if shifts is None else tuple(d for d in shifts if d in domains)


def student_table(evals: dict[str, Evaluation], students: dict[str, tuple[str, int, Path]], domains: tuple[str, ...],
                  teacher: dict[str, float], shifts: tuple[str, ...] | None = None) -> tuple[str, dict]:
    shifted = _shifts(domains, shifts)
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
                 domains: tuple[str, ...], comparisons=COMPARISONS,
                 shifts: tuple[str, ...] | None = None) -> tuple[str, dict]:
    """Paired bootstrap intervals and permutation p-values for the (A, B) variant pairs in `comparisons`, on the
    seeds both have, per domain and the shift average; each with a t-test over its per-seed differences."""
    by_variant: dict[str, dict[int, dict[str, dict[str, int]]]] = {}
    for name, (variant, seed, _) in students.items():
        by_variant.setdefault(variant, {})[seed] = evals[name].correctness()
    shifted = _shifts(domains, shifts)
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
                                 "per_seed": r.per_seed, "seeds": len(seeds),
                                 "t": _seed_test(r.per_seed)} for c, r in results.items()}
    return head + "\n".join(rows) + "\n", out


def _seed_test(per_seed: tuple[float, ...]) -> dict:
    t = seed_t_test(per_seed)
    return {"ci95": t.ci95, "p_value": t.p_value}


def contrast_table(tests: dict, primary=PRIMARY, secondary=SECONDARY) -> tuple[str, dict]:
    """The declared contrasts on the shift average: difference, t-interval over per-seed differences, two-level
    bootstrap interval, t-test p, and Holm-adjusted p (within the primary family, and across every contrast
    reported). Returns the markdown table and {"A - B": {..., "family", "holm_family", "holm_all"}}."""
    rows = [(f"{a} - {b}", "primary" if (a, b) in primary else "secondary", (a, b))
            for a, b in (*primary, *secondary) if f"{a} - {b}" in tests]
    p_all = holm([tests[k]["shift avg"]["t"]["p_value"] for k, _, _ in rows])
    primaries = [k for k, fam, _ in rows if fam == "primary"]
    p_primary = dict(zip(primaries, holm([tests[k]["shift avg"]["t"]["p_value"] for k in primaries])))
    out, lines = {}, ["| contrast (A − B, shift avg) | family | seeds | A − B | t-interval 95% (seeds) | "
                      "bootstrap 95% | p (t) | Holm p (family) | Holm p (all) |", "|---|---|---|---|---|---|---|---|---|"]
    for (key, family, pair), p_holm in zip(rows, p_all):
        r = tests[key]["shift avg"]
        fam_p = p_primary.get(key, math.nan)
        out[key] = {**r, "family": family, "label": LABELS.get(pair, key), "holm_family": fam_p, "holm_all": p_holm}
        a, b = pair
        lines.append(f"| `{a}` − `{b}`: {LABELS.get(pair, '')} | {family} | {r['seeds']} | {r['difference']:+.1f} | "
                     f"{_interval(r['t']['ci95'])} | {_interval(r['ci95'])} | {_p(r['t']['p_value'])} | "
                     f"{_p(fam_p) if family == 'primary' else '—'} | {_p(p_holm)} |")
    return "\n".join(lines) + "\n", out


def _interval(ci) -> str:
    return "—" if ci[0] != ci[0] else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"


def _p(p: float) -> str:
    return "—" if p != p else f"{p:.3f}"


def _cell(r: PairedResult) -> str:
    mark = "**" if r.significant() else ""
    return f"{mark}{r.difference:+.1f}{mark} [{r.ci95[0]:+.1f}, {r.ci95[1]:+.1f}] p={r.p_value:.3f}"


# ----------------------------------------------------------------------------- figures

def bar_chart(summary: dict, domains: tuple[str, ...], path: Path,
              title: str = "PACS: students trained on photo only", shifts: tuple[str, ...] | None = None) -> None:
    """Grouped bars per domain and the shift average, mean ± sd over seeds; the teacher in grey when present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [k for k in summary if k != "teacher"]
    bars = ["teacher", *variants] if "teacher" in summary else variants
    columns = (*domains, "shift_avg")
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(columns), 3.8))
    width = 0.8 / len(bars)
    teacher_shift = float(np.mean([summary["teacher"][d] for d in _shifts(domains, shifts)])) \
        if "teacher" in summary else None
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


def grid_plot(grid: list[dict], path: Path, selection: str) -> None:
    """Selection-val top-1 and acceptance against the share of Q's codes the attack changed, one line per filter
    setting: does a material attack help on the shift, and does the filter? Codes are counted against Q(Q(x))
    (Q applied twice, no δ): Q is not idempotent, so against Q(x) most of the change is the second pass's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "codes_vs_qqx" if all(p.get("codes_vs_qqx") is not None for p in grid) else "codes_vs_qx"
    against = "Q(Q(x))" if key == "codes_vs_qqx" else "Q(x)"
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.3))
    for name, marker in (("on", "o"), ("off", "s")):
        points = sorted((p for p in grid if p.get("filter") == name and p.get(key) is not None), key=lambda p: p[key])
        if not points:
            continue
        x = [100 * p[key] for p in points]
        axes[0].plot(x, [100 * p["selection_val_top1"] for p in points], marker=marker, label=f"filter {name}")
        for p, xi in zip(points, x):
            axes[0].annotate(f"{p['norm']} {p['step_size']:g}", (xi, 100 * p["selection_val_top1"]), fontsize=6)
    points = sorted((p for p in grid if p.get("filter") == "on" and p.get(key) is not None), key=lambda p: p[key])
    axes[1].plot([100 * p[key] for p in points], [100 * p["acceptance_rate"] for p in points], marker="o")
    axes[0].set_ylabel(f"DAD student, {selection} val top-1 (%)")
    axes[1].set_ylabel("Q(x') accepted by the teacher (%)")
    for ax in axes:
        ax.set_xlabel(f"codes the attack changed, vs {against} (%)")
    axes[0].legend(fontsize=8)
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


def set_diagnostics(samples: Path) -> dict:
    """A sample set's acceptance and the means of what its attack changed (from the manifest, no scan)."""
    st = load_manifest(str(samples / "manifest.json")).statistics
    out = {"acceptance_rate": st.acceptance_rate, "accepted": st.accepted, "clean": st.clean}
    if st.perturbation is not None:
        out |= {name: st.perturbation.mean(name) for name in
                ("codes_vs_qx", "codes_vs_qqx", "l2_vs_qx", "l2_vs_qqx", "delta_l2", "kl_vs_qx", "same_vs_qx")}
    return out


def findings(summary: dict, contrasts: dict, domains: tuple[str, ...], shifts: tuple[str, ...]) -> list[str]:
    """Plain sentences on what the numbers do and do not show (generated, so they never drift from the table)."""
    lines = []
    teacher = summary["teacher"]
    variants = [k for k in summary if k != "teacher"]
    beats = all(teacher[d] > max(np.mean(summary[v][d]) for v in variants) for d in shifts)
    line = f"- Teacher beats every student on every shifted domain: {'yes' if beats else 'NO'}"
    if "ce" in summary:
        ce = float(np.mean(summary["ce"]["photo"]))
        line += (f"; on photo it scores {teacher['photo']:.1f} vs the CE student's {ce:.1f} "
                 f"({'at least as good' if teacher['photo'] >= ce else 'WORSE'})")
    lines.append(line + ".")
    for key, r in contrasts.items():
        t_lo, t_hi = r["t"]["ci95"]
        b_lo, b_hi = r["ci95"]
        if t_lo == t_lo:
            verdict = ("a gain" if t_lo > 0 else "a loss" if t_hi < 0 else "no difference shown: the interval includes 0")
            if (t_lo > 0 or t_hi < 0) and not r["holm_all"] < 0.05:
                verdict += f", but not after Holm's correction (p {r['holm_all']:.3f})"
            seed_part = f"t-interval over seeds {t_lo:+.1f} to {t_hi:+.1f}"
            if r["seeds"] == 2:
                seed_part += " (2 seeds: one degree of freedom, its width rests on a single spread)"
        else:
            verdict, seed_part = "one seed: no interval carries seed noise", "no t-interval (one seed)"
        lines.append(f"- {'**Primary**' if r['family'] == 'primary' else 'Secondary'}: {r['label']}, shift average "
                     f"{r['difference']:+.1f} points ({seed_part}; two-level bootstrap {b_lo:+.1f} to {b_hi:+.1f}; "
                     f"{r['seeds']} seed{'s' if r['seeds'] > 1 else ''}): {verdict}.")
    return lines


def write_report(out: Path, *, teacher: Path, vqs: dict[str, Path | None], sets: dict[str, Path], chosen: dict,
                 grid: list[dict], mechanism: dict | None, students: dict[str, tuple[str, int, Path]],
                 evals: dict[str, Path], domains: tuple[str, ...], skipped: list[str], timings: dict, total_s: float,
                 args: dict) -> dict:
    samples = sets["attack"]
    manifest_uri = str(samples / "manifest.json")
    manifest = load_manifest(manifest_uri)
    st = manifest.statistics
    shifts = _shifts(domains, SHIFTS)
    selection = "art_painting"
    for point in grid:
        point.update(set_diagnostics(Path(point["samples"])))
    control_sets = {name: set_diagnostics(path) for name, path in sets.items()}
    loaded = {name: load_evaluation(path) for name, path in evals.items()}
    teacher_test, teacher_val = loaded["teacher"].top1, loaded["teacher-val"].top1
    table, summary = student_table(loaded, students, domains, teacher_test, shifts)
    tests_md, tests = paired_tests(loaded, students, domains, shifts=shifts)
    contrasts_md, contrasts = contrast_table(tests)
    bar_chart(summary, domains, out / "results_bar.png", shifts=shifts)
    sample_grid(manifest_uri, out / "samples_grid.png")
    if any("selection_val_top1" in p for p in grid):
        grid_plot(grid, out / "attack_grid.png", selection)
    qs = {name: json.loads((vq / "report.json").read_text()) for name, vq in vqs.items() if vq is not None}
    set_id = samples.name
    write_run_records(out, [(teacher.name, "train", None)]
                      + [(run.name, "train", set_id) for _, _, run in students.values()]
                      + [(p.name, "eval", None) for p in evals.values()])
    attack = attack_summary(manifest.config.attack)
    teacher_domains = [d for d in domains if d in teacher_val]  # its val covers the PACS domains only
    teacher_rows = ["| split | " + " | ".join(teacher_domains) + " |", "|---|" + "---|" * len(teacher_domains)]
    for split, values in (("val", teacher_val), ("test", teacher_test)):
        teacher_rows.append(f"| {split} | " + " | ".join(f"{values.get(d, float('nan')):.1f}"
                                                        for d in teacher_domains) + " |")
    found = findings(summary, contrasts, domains, shifts)
    report = {"table": summary, "paired_tests": tests, "contrasts": contrasts, "findings": found,
              "teacher_val": teacher_val, "teacher_test": teacher_test, "attack": manifest.config.attack,
              "attack_summary": attack, "chosen": {k: chosen[k] for k in ("norm", "step_size", "filter", "rows")},
              "grid": grid, "sets": control_sets, "mechanism": mechanism, "skipped_variants": skipped,
              "acceptance_rate": st.acceptance_rate, "accepted": st.accepted, "rejected": st.rejected.model_dump(),
              "clean": st.clean, "q": {name: {"psnr_db": q["psnr_db"], "mean_image_psnr_db": q.get("mean_image_psnr_db"),
                                              "code_usage": q.get("code_usage")} for name, q in qs.items()},
              "shifts": list(shifts), "timings": timings, "total_s": total_s, "args": args}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))

    extra = [d for d in domains if d not in DOMAIN_ROLES]
    lines = ["# PACS experiment", "",
             f"Students train on photo only. Shift average: {' + '.join(shifts)} test"
             + (f"; {', '.join(extra)}: unseen by every model, reported beside it" if extra else "") + ". "
             "The teacher and Q are one draw each: every interval here is over student seeds and test images, "
             "not over teachers or Qs.", "",
             "## Declared contrasts (shift average)", "",
             "A − B in top-1 points, mean over the seeds both have. t-interval: over per-seed differences (seed "
             "noise in full). Bootstrap: two-level (seeds, then images). p (t): the t-test of the per-seed "
             "differences; Holm: adjusted within the primary family and across every contrast listed.", "",
             contrasts_md, "## What this shows", "", *found, "",
             "## Students (test splits)", "", table,
             "## Per domain (paired on the same test images)", "",
             "[95% interval: two-level bootstrap]; p: paired sign-flip permutation over images, which ignores seed "
             "noise; **bold**: the bootstrap interval excludes 0.", "", tests_md]
    if skipped:
        lines += [f"Not trained: {', '.join(f'`{v}`' for v in skipped)} (the same rows as `dad`'s chosen filter).", ""]
    lines += ["## Attack", "", f"The students' set: {attack}; filter {chosen['filter']} (`adversarial_rows` "
              f"{chosen['rows']}). Acceptance (teacher still right): {st.acceptance_rate:.1%} "
              f"({st.accepted} of {st.clean}).", ""]
    if any("selection_val_top1" in p for p in grid):
        lines += [f"Grid (declared before any run; chosen by the DAD student's **{selection} val** top-1, "
                  f"{args['grid_epochs']} epochs, seed 0; ties go to the smaller step, then filter on):", "",
                  "| norm | step | filter | accepted | codes changed vs Q(x) | vs Q(Q(x)) | ‖Q(x′)−Q(x)‖₂ | "
                  "‖Q(x′)−Q(Q(x))‖₂ | teacher KL | val top-1 |", "|---|---|---|---|---|---|---|---|---|---|"]
        for p in grid:
            lines.append(f"| {p['norm']} | {p['step_size']:g} | {p['filter']} | {p['acceptance_rate']:.1%} | "
                         f"{_pct(p.get('codes_vs_qx'))} | {_pct(p.get('codes_vs_qqx'))} | {_num(p.get('l2_vs_qx'))} | "
                         f"{_num(p.get('l2_vs_qqx'))} | {_num(p.get('kl_vs_qx'), 3)} | "
                         f"{100 * p['selection_val_top1']:.1f} |")
        lines += ["", "![attack grid](attack_grid.png)", ""]
    lines += ["Control sets (same source, teacher and code path; one setting differs):", "",
              "| set | accepted | codes changed vs Q(x) | vs Q(Q(x)) | ‖Q(x′)−Q(x)‖₂ | ‖δ‖₂ |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {d['acceptance_rate']:.1%} | {_pct(d.get('codes_vs_qx'))} | {_pct(d.get('codes_vs_qqx'))} "
              f"| {_num(d.get('l2_vs_qx'))} | {_num(d.get('delta_l2'))} |" for name, d in control_sets.items()]
    lines += [""]
    if mechanism:
        targets = list(mechanism["targets"])
        lines += ["## Mechanism check (no training)", "",
                  "Fréchet distance in the teacher's penultimate features from each photo/train set to each val "
                  "split (" + ", ".join(f"{t}: {n} images" for t, n in mechanism["targets"].items()) + "). Lower = "
                  "nearer. Sets of fewer images read higher (the estimate's bias), so compare sets of similar n.", "",
                  "| set | grid point | n | " + " | ".join(f"→ {t} val" for t in targets) + " |",
                  "|---|---|---|" + "---|" * len(targets)]
        lines += [f"| {r['set']} | {r['point'] or '—'} | {r['n']} | " + " | ".join(f"{r['fd'][t]:.1f}" for t in targets)
                  + " |" for r in mechanism["rows"]]
        lines += [""]
    lines += ["## Teacher (trained on every domain's train split)", "", *teacher_rows, "", "## Q", ""]
    for name, q in qs.items():
        lines += [f"- **{name}**: PSNR (dB) per val split " + ", ".join(f"{k} {v:.2f}" for k, v in q["psnr_db"].items())
                  + " (the training set's mean image: " + ", ".join(
                      f"{k} {v:.1f}" for k, v in (q.get("mean_image_psnr_db") or {}).items()) + ")"
                  + ("; codebook use " + ", ".join(f"{k} {100 * v['used']:.0f}% (perplexity {v['perplexity']:.0f})"
                                                  for k, v in q["code_usage"].items()) if q.get("code_usage") else "")
                  + "."]
    lines += ["", "## Wall time", "", "| stage | seconds | reused |", "|---|---|---|"]
    lines += [f"| {k} | {v['seconds']:.0f} | {'yes' if v['reused'] else ''} |" for k, v in timings.items()]
    made = sum(v["seconds"] for v in timings.values() if not v["reused"])
    lines += ["", f"This invocation: {total_s / 60:.1f} min ({made / 60:.1f} min in stages it ran; all stages, "
              f"reused ones at the time they took: {sum(v['seconds'] for v in timings.values()) / 60:.1f} min).", "",
              "![results](results_bar.png)", "", "![samples](samples_grid.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    publish_report(out, samples.name)
    return report


DOMAIN_ROLES = ("photo", "art_painting", "cartoon")


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


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
