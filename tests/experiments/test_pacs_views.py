"""The views comparison's report: mean ± sd per arm and paired tests on hand-built per-image results."""
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments.pacs import DOMAINS
from experiments.pacs_views import COMPARISONS, VIEWS_REPORT_FILES, build_parser, main, write_views_report
from experiments.report import paired_tests, publish_report


@dataclass
class FakeEvaluation:
    """What paired_tests reads from an evaluation: who was right on which image."""

    right: int  # images right out of 20 per domain

    def correctness(self):
        return {d: {f"{d}/{i}": int(i < self.right) for i in range(20)} for d in DOMAINS}


def test_views_report_tables_each_arm_and_tests_the_pairs_it_names(tmp_path):
    right = {("kd", "no-aug"): 8, ("kd", "views"): 14, ("kd", "online"): 14,
             ("dad", "no-aug"): 8, ("dad", "views"): 15, ("dad", "online"): 15}
    students, evals, rows, seconds = {}, {}, {}, {}
    for (objective, arm), n in right.items():
        for seed in (0, 1):
            name = f"views-{objective}-{arm}-s{seed}"
            evals[name] = FakeEvaluation(n + seed)
            students[name] = (f"{objective}/{arm}", seed, Path(name))
            top1 = {d: 100 * (n + seed) / 20 for d in DOMAINS}
            rows.setdefault((objective, arm), []).append({"photo_val": 50.0 + seed, **top1})
            seconds.setdefault((objective, arm), []).append(60.0 if arm != "online" else 600.0)
    tests_md, tests = paired_tests(evals, students, DOMAINS, COMPARISONS)
    assert set(tests) == {f"{a} - {b}" for a, b in COMPARISONS}
    gain = tests["kd/views - kd/no-aug"]["shift avg"]
    assert gain["difference"] == 30.0 and gain["ci95"][0] > 0 and gain["seeds"] == 2
    same = tests["kd/online - kd/views"]["shift avg"]
    assert same["difference"] == 0.0 and same["ci95"][0] <= 0 <= same["ci95"][1]

    teacher = {d: 80.0 for d in DOMAINS}
    write_views_report(tmp_path, rows, seconds, Path("samples-abc"), 120.0, tests_md, tests, teacher)
    md = (tmp_path / "views_report.md").read_text()
    assert "| `kd` | views | 2 | 50.5 ± 0.7 | 72.5 ± 3.5 |" in md and "| 600 |" in md
    assert "`kd/views` − `kd/no-aug`" in md and "**+30.0**" in md
    saved = json.loads((tmp_path / "views_report.json").read_text())
    assert set(saved["arms"]) == {f"{o}/{a}" for o, a in right} and saved["paired_tests"] == json.loads(
        json.dumps(tests)) and saved["teacher_test"] == teacher
    assert (tmp_path / "views_bar.png").stat().st_size > 1000

    # published as a report run of its own, under the names the control plane shows
    run_id = publish_report(tmp_path, "samples-abc", "pacs-views-report", VIEWS_REPORT_FILES,
                            module="experiments.pacs_views")
    folder = tmp_path / "store" / "runs" / run_id
    assert {p.name for p in folder.iterdir()} >= {"report.md", "report.json", "results_bar.png"}
    assert (folder / "report.md").read_text() == md
    record = json.loads((folder / "run.json").read_text())
    assert "experiments.pacs_views" in " ".join(record["entrypoint"]) and record["config"]["report"] is True


def test_views_experiment_needs_the_attack_the_pacs_experiment_chose():
    with pytest.raises(SystemExit, match="--attack NORM:STEP is required"):
        main(["--pacs", "/data/pacs"])
    with pytest.raises(SystemExit):  # the PACS experiment's grid is not an option here (exit 2, named)
        main(["--pacs", "/data/pacs", "--attack", "l2:0.1", "--grid", "l2:1.1"])
    assert "--variants" not in build_parser().format_help()
    args = build_parser().parse_args(["--pacs", "/data/pacs", "--attack", "l2:0.1"])
    assert (args.views, args.seeds, args.view_min_scale) == (4, 2, 0.35)
