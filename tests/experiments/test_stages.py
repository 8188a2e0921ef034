"""Stages keyed by their configuration: reused only when the whole configuration matches."""
import json

import pytest

from experiments.stages import StageRunner, config_key



def test_same_configuration_is_reused_and_another_one_runs_again(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("subprocess.run", lambda cmd, **kw: calls.append(cmd))
    runner = StageRunner(tmp_path / "stages", log=lambda *_: None)
    first = runner.run("samples", tmp_path / "sets", {"attack": ["l2", 0.1]}, lambda out: ["svc", str(out)])
    again = runner.run("samples", tmp_path / "sets", {"attack": ["l2", 0.1]}, lambda out: ["svc", str(out)])
    other = runner.run("samples", tmp_path / "sets", {"attack": ["l2", 1.1]}, lambda out: ["svc", str(out)])
    assert len(calls) == 2 and calls[0][-1] == str(first.out) and calls[1][-1] == str(other.out)
    assert again.reused and again.out == first.out and other.out != first.out and not other.reused
    assert first.out.name == f"samples-{config_key('samples', {'attack': ['l2', 0.1]})}"
    record = json.loads((tmp_path / "stages" / f"{first.out.name}.json").read_text())
    assert record["finished"] and record["config"] == {"attack": ["l2", 0.1]}
    assert set(runner.timings()) == {first.out.name, other.out.name}


def test_a_failed_stage_is_not_marked_finished_and_runs_again(tmp_path):
    runner = StageRunner(tmp_path / "stages", log=lambda *_: None)
    fail = lambda out: ["json.tool", str(tmp_path / "missing.json")]  # noqa: E731 - exits 1
    with pytest.raises(Exception):
        runner.run("x", tmp_path, {"a": 1}, fail)
    record = next((tmp_path / "stages").glob("x-*.json"))
    assert not json.loads(record.read_text()).get("finished")
    (tmp_path / "missing.json").write_text("{}")
    assert not runner.run("x", tmp_path, {"a": 1}, fail).reused


def test_key_depends_on_every_field_and_not_on_order():
    assert config_key("s", {"a": 1, "b": [1, 2]}) == config_key("s", {"b": [1, 2], "a": 1})
    assert config_key("s", {"a": 1}) != config_key("s", {"a": 1.5}) != config_key("t", {"a": 1})


def test_a_q_stage_from_a_yaml_file_is_keyed_by_its_content_not_its_name(tmp_path, monkeypatch):
    """Editing one's taming config (same path) makes a new Q: the stage key holds the file's content."""
    from dad_core.model_configs import vqgan_config_path
    from experiments.pacs import Experiment, build_parser

    monkeypatch.setattr("subprocess.run", lambda cmd, **kw: None)
    config = tmp_path / "q.yaml"
    bundled = vqgan_config_path("demo-vq").read_text()
    config.write_text(bundled)
    experiment = Experiment(build_parser().parse_args(["--pacs", str(tmp_path), "--out", str(tmp_path / "out"),
                                                       "--vq-config", str(config)]))
    experiment.stages.log = lambda *_: None
    first = experiment.fit_q(tmp_path / "splits", "teacher")
    assert experiment.fit_q(tmp_path / "splits", "teacher") == first  # unchanged: reused
    config.write_text(bundled.replace("n_embed: ", "n_embed: 1"))  # a bigger codebook, same file name
    assert experiment.fit_q(tmp_path / "splits", "teacher") != first


def test_a_stage_records_when_it_finished_so_the_catalog_shows_its_duration(tmp_path, monkeypatch):
    from experiments.report import stage_times, write_run_records

    monkeypatch.setattr("subprocess.run", lambda cmd, **kw: None)
    runner = StageRunner(tmp_path / "stages", log=lambda *_: None)
    stage = runner.run("kd-s0", tmp_path / "store" / "runs", {"a": 1}, lambda out: ["svc", str(out)])
    record = tmp_path / "stages" / f"{stage.out.name}.json"
    data = json.loads(record.read_text())
    data["seconds"] = 90.0
    record.write_text(json.dumps(data))
    started, finished = stage_times(record)
    assert (finished - started).total_seconds() == 90.0 and abs(finished.timestamp() - data["finished_at"]) < 1e-3
    assert stage_times(tmp_path / "stages" / "missing.json") == (None, None)
    write_run_records(tmp_path, [(stage.out.name, "train", None)])
    status = json.loads((tmp_path / "store" / "runs" / stage.out.name / "status.json").read_text())
    assert status["started_at"] != status["finished_at"] and status["status"] == "SUCCEEDED"
