"""The command line: help, early failures, and exactly-once resume after the job is killed part-way."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dad_core.views import ViewConfig, draw_views
from schemas import sample_store as ss
from services.generator.cli import build_parser, main
from services.sample_store import open_sample_set, verify_sample_set

REPO = Path(__file__).resolve().parents[3]


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert flag in text
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help"
    assert "ray job submit" in text and "manifest" in text


def test_unwritable_output_exits_2_naming_the_uri(tiny_image_folder, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = str(tmp_path / "file" / "store")
    assert main(["--source", str(tiny_image_folder), "--out", out, "--no-progress"]) == 2
    assert out in capsys.readouterr().err


def test_unknown_preset_field_exits_2_naming_it(tiny_image_folder, tmp_path, capsys):
    assert main(["--source", str(tiny_image_folder), "--out", str(tmp_path), "--set", "attack.stepz=2"]) == 2
    assert "stepz" in capsys.readouterr().err


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # Its own session, so killing the group takes the job's local Ray down with it, like a lost node.
    return subprocess.Popen([sys.executable, "-m", "services.generator", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _digest(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def test_killed_job_resumes_without_regenerating_finished_shards(tmp_path, make_image_folder):
    source = make_image_folder(tmp_path / "src", per_class=8)  # 24 images -> 8 shards of 3
    out = tmp_path / "store"
    args = ["--source", str(source), "--out", str(out), "--name", "resume", "--shard-size", "3", "--batch-size", "3",
            "--set", "attack.steps=20", "--num-cpus", "2", "--cpus-per-actor", "1", "--no-progress", "--views", "2"]
    first = _cli(*args)
    commits, deadline = out / "resume" / ss.COMMITS_DIR, time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None and not list(commits.glob("*.json")):
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = {p.name: json.loads(p.read_text()) for p in commits.glob("*.json")}
    assert 0 < len(done_before) < 8, f"kill did not land part-way: {len(done_before)} shards committed"
    print("committed before the kill:", len(done_before))
    status = json.loads((out / "resume" / ss.STATUS_NAME).read_text())
    assert status["state"] in ("starting", "running") and status["total_items"] == 24
    assert not (out / "resume" / ss.MANIFEST_NAME).exists()
    files_before = {c["shard"]["path"]: _digest(out / "resume" / c["shard"]["path"]) for c in done_before.values()}

    second = _cli(*args)
    log, _ = second.communicate(timeout=240)
    assert second.returncode == 0, log
    assert "sample set: " in log

    manifest = verify_sample_set(str(out / "resume"))  # checksums, row counts, no duplicated sample_id
    assert manifest.timings.runs == 2 and len(manifest.shards) == 8
    listed = {s.path for s in manifest.shards}
    assert set(files_before) <= listed  # the finished shards were kept ...
    assert {p: _digest(out / "resume" / p) for p in files_before} == files_before  # ... and not rewritten
    assert {f"shards/{p.name}" for p in (out / "resume" / "shards").iterdir()} == listed  # orphans removed
    ids = open_sample_set(str(out / "resume"), accepted_only=False).index
    assert ids.num_rows == 48 and len(set(ids[ss.COL_SAMPLE_ID].to_pylist())) == 48
    # shards hold the seeded permutation of the listing, and across the kill: 0 lost, 0 duplicated items
    source_ids = ids[ss.COL_SOURCE_ID].to_pylist()
    clean = [sid for sid, kind in zip(source_ids, ids[ss.COL_KIND].to_pylist()) if kind == ss.KIND_CLEAN]
    expected = sorted(p.relative_to(source).as_posix() for p in source.rglob("*.jpg"))
    assert sorted(clean) == expected and len(clean) == len(set(clean)) == 24
    assert clean != expected  # not the class-sorted listing order
    # stored views (--views 2): every clean row of both runs has its own seeded views, and its logits
    rows = open_sample_set(str(out / "resume"), kinds=(ss.KIND_CLEAN,))
    assert manifest.config.views.count == 2 and rows.num_views == 2
    for i in range(len(rows)):
        rec = rows.record(i)
        drawn = draw_views(ViewConfig(2), manifest.config.seed, rec[ss.COL_SAMPLE_ID], 32, 32)
        assert rec[ss.COL_VIEWS] == [[*v.as_tuple()[:4], int(v.flip)] for v in drawn]
        assert len(rec[ss.COL_VIEW_LOGITS]) == 2 and len(rec[ss.COL_VIEW_LOGITS][0]) == 3


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~40 s; test_killed_job_resumes... runs the same command without a standing cluster
def test_same_command_runs_under_ray_job_submit(tmp_path, tiny_image_folder):
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    dashboard = _free_port()
    head = subprocess.Popen(
        [f"{venv_bin}/ray", "start", "--head", "--block", "--num-cpus", "2", "--node-ip-address", "127.0.0.1",
         "--port", str(_free_port()), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--include-dashboard", "true"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        out = tmp_path / "store"
        cmd = [f"{venv_bin}/ray", "job", "submit", "--address", f"http://127.0.0.1:{dashboard}", "--working-dir",
               str(REPO), "--", "python", "-m", "services.generator", "--source", str(tiny_image_folder), "--out",
               str(out), "--name", "submitted", "--cpus-per-actor", "0.5"]
        deadline = time.monotonic() + 90
        while True:  # the dashboard needs a few seconds before it takes jobs
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
            if done.returncode == 0 or time.monotonic() > deadline or "sample set:" in done.stdout:
                break
            time.sleep(3)
        assert done.returncode == 0, done.stdout + done.stderr
        assert verify_sample_set(str(out / "submitted")).statistics.clean == 12
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)


def test_source_without_a_readable_image_exits_2_before_starting_ray(tmp_path, capsys):
    (tmp_path / "src" / "cls").mkdir(parents=True)
    (tmp_path / "src" / "cls" / "a.jpg").write_bytes(b"garbage")
    assert main(["--source", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no readable image" in err and str(tmp_path / "src") in err


def test_the_summary_says_when_the_teacher_is_near_chance_and_why_that_empties_the_set():
    from services.generator.cli import teacher_line

    assert teacher_line(0, 200, 7).startswith("  teacher right on 0 of 200 clean images (0.0%) - near chance")
    assert "random-init" in teacher_line(40, 200, 7)  # 20% < 2 x 1/7
    assert teacher_line(150, 200, 7) == "  teacher right on 150 of 200 clean images (75.0%)"


def test_the_summary_gives_the_attacks_diagnostics_and_warns_when_it_is_immaterial():
    from schemas.perturbation import DIAGNOSTIC_NAMES, PerturbationTally
    from services.generator.cli import perturbation_lines

    def tally(same, codes):
        t = PerturbationTally()
        values = {name: [0.1, 0.3] for name in DIAGNOSTIC_NAMES}
        values["same_vs_qx"], values["codes_vs_qx"] = [same, same], [codes, codes]
        t.add(values, [0, 1])
        return t

    assert perturbation_lines(None) == []
    material = perturbation_lines(tally(0.2, 0.3))
    assert len(material) == 1 and "20.0% values identical, 30.0% codes changed" in material[0]
    assert "|delta| L2 0.2" in material[0]
    lines = perturbation_lines(tally(0.8, 0.005))
    assert lines[-1].startswith("warning: the attack is immaterial: 80% of Q(x')'s pixel values are identical")
    assert "attack.step_size" in lines[-1] and "attack.steps=0" in lines[-1]


def test_the_controls_are_reachable_from_the_command_line():
    from services.generator.cli import build_parser, config_from_args
    from services.jobs.presets import resolve_preset
    from services.trainer.cli import build_parser as train_parser, config_from_args as train_config

    args = build_parser().parse_args(["--source", "/d", "--set", "attack.delta=random", "--set", "attack.steps=0",
                                      "--set", "attack.through_discretizer=true", "--requantize-every", "2"])
    config = config_from_args(args)
    attack = resolve_preset(config.preset, config.overrides).attack
    assert (attack.delta, attack.steps, attack.through_discretizer, config.requantize_every) == ("random", 0, True, 2)
    train = train_config(train_parser().parse_args(["--source", "/d", "--samples", "/s", "--out", "/o", "--objective", "dad",
                                                    "--adversarial-rows", "count-matched"]))
    assert train.adversarial_rows == "count-matched"
