"""`python -m experiments.pacs_views --pacs PATH --attack NORM:STEP`: augmentation with stored soft labels on PACS.

Same splits, teacher, Q and student recipe as `experiments.pacs` (its finished stages in --out are reused, keyed
by their configuration), one sample set with K stored views (`--views K --adversarial-views`, crops of at least
`--view-min-scale` of the area), and `kd` / `dad` students in three arms:
  no-aug   the set's stored logits, no augmentation (`--views 0`): today's stored-logit training
  views    view (epoch mod K) of each image with its stored logits: augmentation, no teacher in memory
  online   the teacher run on every step's random-resized crop + flip (`--teacher-logits online`)
Scored on photo val (the trainer's last epoch) and each domain's test split; mean ± sd over seeds, and wall time
per student (the online arm pays for the teacher's forward on every image).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from experiments.pacs import DOMAINS, Experiment, build_parser as pacs_parser, last_val_top1
from experiments.report import bar_chart, load_evaluation, mean_sd, paired_tests, publish_report, write_run_records

MIN_SCALE = 0.35
MODULE = "experiments.pacs_views"
# its files in the output folder -> their names in the store's report run (the control plane shows those)
VIEWS_REPORT_FILES = {"views_report.md": "report.md", "views_report.json": "report.json",
                      "views_bar.png": "results_bar.png"}

# A − B pairs with paired tests: what views buy over no augmentation, what an online teacher adds over them,
# and DAD vs KD within an arm.
COMPARISONS = tuple((f"{o}/{a}", f"{o}/{b}") for o in ("kd", "dad") for a, b in (("views", "no-aug"),
                                                                                   ("online", "views"))) \
    + (("dad/views", "kd/views"), ("dad/no-aug", "kd/no-aug"), ("dad/online", "kd/online"))


def arms(min_scale: float) -> dict[str, dict]:
    """Each arm's trainer settings (schemas.api.TrainRunConfig fields)."""
    return {"no-aug": {"views": 0}, "views": {},
            "online": {"teacher_logits": "online", "random_resized_crop": min_scale, "hflip": True}}


class ViewsExperiment(Experiment):
    def _run(self) -> int:
        a = self.args
        t0 = time.time()
        splits = self.make_splits()
        photo_train, photo_val = splits / "photo" / "train", splits / "photo" / "val"
        teacher = self.train("teacher", splits / "teacher" / "train", splits / "teacher" / "val", "ce",
                             self.teacher_recipe, 0, a.teacher_arch, overrides={"image_size": a.image_size})
        vq = self.fit_q(splits, "teacher")
        samples = self.generate("samples", teacher, vq, photo_train, a.attack,
                                extra={"views": a.views, "adversarial_views": True,
                                       "view_min_scale": a.view_min_scale})
        rows, seconds, students, evals, eval_dirs = {}, {}, {}, {}, []
        suites = [f"{d}=imagefolder:{splits / d / 'test'}" for d in DOMAINS]
        for objective in ("kd", "dad"):
            for arm, extra in arms(a.view_min_scale).items():
                for seed in range(a.seeds):
                    name = f"views-{objective}-{arm}-s{seed}"
                    run = self.train(name, photo_train, photo_val, objective, self.recipe, seed, a.student,
                                     samples=samples, extra=extra, overrides=self.model_overrides(teacher, vq))
                    eval_dirs.append(self.evaluate(f"eval-{run.name}", run, suites))
                    evals[name] = load_evaluation(eval_dirs[-1])
                    students[name] = (f"{objective}/{arm}", seed, run)
                    rows.setdefault((objective, arm), []).append({"photo_val": 100 * last_val_top1(run),
                                                                  **evals[name].top1})
                    seconds.setdefault((objective, arm), []).append(self.stages.timings()[run.name]["seconds"])
        tests_md, tests = paired_tests(evals, students, DOMAINS, COMPARISONS)
        teacher_test = load_evaluation(self.evaluate("eval-teacher", teacher, suites)).top1  # experiments.pacs's
        write_views_report(self.out, rows, seconds, samples, time.time() - t0, tests_md, tests, teacher_test)
        # the control plane's catalog lists the students and their evaluations, and the report as a run
        write_run_records(self.out, [(run.name, "train", samples.name) for _, _, run in students.values()]
                          + [(e.name, "eval", None) for e in eval_dirs], module=MODULE)
        publish_report(self.out, samples.name, "pacs-views-report", VIEWS_REPORT_FILES,
                       "the PACS views comparison (no augmentation / stored views / online teacher)", module=MODULE)
        return 0


def write_views_report(out: Path, rows: dict, seconds: dict, samples: Path, total_s: float, tests_md: str = "",
                       tests: dict | None = None, teacher: dict[str, float] | None = None) -> None:
    """views_report.md/json and views_bar.png (each arm per test domain, the teacher in grey when given)."""
    columns = ["photo_val", *DOMAINS, "shift_avg"]
    for results in rows.values():
        for r in results:
            r["shift_avg"] = statistics.mean(r[d] for d in DOMAINS if d != "photo")
    summary = {f"{o}/{arm}": {c: [r[c] for r in results] for c in (*DOMAINS, "shift_avg")}
               for (o, arm), results in rows.items()}
    bar_chart({"teacher": teacher, **summary} if teacher else summary, DOMAINS, out / "views_bar.png",
              "PACS: no augmentation / stored views / online teacher")
    lines = ["# PACS: augmentation with stored soft labels", "",
             f"Sample set: {samples.name}. Top-1 (%), mean ± sd over seeds; photo val from the trainer's last epoch.",
             "", "| objective | arm | seeds | " + " | ".join(c.replace("_", " ") for c in columns)
             + " | s per student |", "|---|---|---|" + "---|" * (len(columns) + 1)]
    for (objective, arm), results in rows.items():
        lines.append(f"| `{objective}` | {arm} | {len(results)} | "
                     + " | ".join(mean_sd([r[c] for r in results]) for c in columns)
                     + f" | {statistics.mean(seconds[(objective, arm)]):.0f} |")
    if tests_md:
        lines += ["", "Paired on the same test images: A − B in top-1 points averaged over seeds; [95% interval: "
                  "two-level bootstrap over seeds and images]; p: paired sign-flip permutation test; **bold**: the "
                  "interval excludes 0.", "", tests_md.rstrip("\n")]
    lines += ["", f"Wall time of this invocation: {total_s / 60:.1f} min.", "", "![arms](views_bar.png)"]
    (out / "views_report.md").write_text("\n".join(lines) + "\n")
    (out / "views_report.json").write_text(json.dumps(
        {"arms": {f"{o}/{arm}": {"results": r, "seconds": seconds[(o, arm)]} for (o, arm), r in rows.items()},
         "paired_tests": tests or {}, "teacher_test": teacher}, indent=2))
    print("\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    p = pacs_parser()
    p.prog, p.description = "python -m experiments.pacs_views", __doc__
    p.add_argument("--views", type=int, default=4, help="stored views per image (default: 4)")
    p.add_argument("--view-min-scale", type=float, default=MIN_SCALE,
                   help=f"smallest crop area of a view, and the online arm's random-resized crop (default: {MIN_SCALE})")
    p.set_defaults(seeds=2)
    for action in p._actions:  # experiments.pacs options this comparison has no use for: hidden, and refused
        if action.dest in NOT_USED:
            action.help = argparse.SUPPRESS
    return p


# the PACS experiment's variants, attack grid and extra test domains: this comparison fixes its own arms
NOT_USED = ("variants", "grid", "grid_epochs", "extra_domain", "control_seeds", "filter", "no_mechanism", "quick")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for dest in NOT_USED:
        if getattr(args, dest) != parser.get_default(dest):
            parser.error(f"--{dest.replace('_', '-')} is an option of experiments.pacs; this comparison does not use it")
    if args.attack is None:
        raise SystemExit("error: --attack NORM:STEP is required (the attack experiments.pacs chose on photo val)")
    return ViewsExperiment(args).run()


if __name__ == "__main__":
    raise SystemExit(main())
