"""MLflow tracking against a real tracking server (sqlite backend, local artifact root) started here on
loopback: a demo-sized generate -> train -> eval makes the nested runs, params, metrics and artifacts."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no GenAI job workers (huey)
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.Popen([mlflow, "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
                             "--default-artifact-root", f"file://{root}/artifacts", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"],
                            stdout=open(root / "server.log", "wb"), stderr=subprocess.STDOUT, env=env)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start: " + (root / "server.log").read_text()[-2000:])
            time.sleep(0.5)
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_generate_train_eval_make_nested_runs_with_params_metrics_and_artifacts(
        mlflow_server, tmp_path, make_image_folder, ray_local, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from services.evaluator.cli import main as evaluate
    from services.generator import GeneratorConfig, prepare_job, run_generation
    from services.generator.tracking import track_generation
    from services.trainer.cli import main as train

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    source = make_image_folder(tmp_path / "source", per_class=6)
    # the generator's CLI does exactly this after run_generation (its main() would start a second Ray here)
    config = GeneratorConfig(source=str(source), out=str(tmp_path / "sets"), name="tracked", preset="tiny",
                             shard_size=8, batch_size=8, progress_bar=False)
    assert track_generation(config, run_generation(config, job=prepare_job(config))).active
    out = tmp_path / "run"
    assert train(["--source", str(source), "--samples", str(tmp_path / "sets/tracked/manifest.json"),
                  "--out", str(out), "--preset", "tiny", "--student", "test_resnet", "--epochs", "2",
                  "--batch-size", "4", "--cpus-per-worker", "0.5", "--loader-workers", "0", "--val-fraction", "0.2",
                  "--warmup-epochs", "0", "--log-every", "1", "--no-progress"]) == 0
    assert evaluate(["--model", str(out), "--suites", f"photo=imagefolder:{source}", "--out", str(tmp_path / "eval"),
                     "--device", "cpu", "--workers", "0", "--batch-size", "8"]) == 0
    capsys.readouterr()

    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("dad/tracked")
    runs = {r.data.tags["dad.kind"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"generate", "train", "eval"}
    gen, tr, ev = runs["generate"], runs["train"], runs["eval"]
    assert all(r.info.status == "FINISHED" for r in runs.values())
    # generate: the set's acceptance and counts; the resolved preset as params; the manifest
    manifest = json.loads((tmp_path / "sets/tracked/manifest.json").read_text())
    assert gen.data.metrics["accepted"] == manifest["statistics"]["accepted"]
    assert gen.data.metrics["acceptance_rate"] == pytest.approx(manifest["statistics"]["accepted"] /
                                                                manifest["statistics"]["clean"])
    assert gen.data.params["preset_config.attack.step_size"] == "0.1" and gen.data.params["name"] == "tracked"
    assert [a.path for a in client.list_artifacts(gen.info.run_id)] == ["manifest.json"]
    # and what the attack changed (the manifest's diagnostics: mean and quantiles of each measure)
    from schemas.manifest import SampleSetManifest

    summary = SampleSetManifest.from_json(json.dumps(manifest)).statistics.perturbation.summary()
    assert gen.data.metrics["attack.codes_vs_qx.mean"] == pytest.approx(summary.metrics["codes_vs_qx"].mean)
    assert "attack.l2_vs_qx.q95" in gen.data.metrics
    # train: nested under the set's generate run; config params; every step's loss; the model folder
    assert tr.data.tags["mlflow.parentRunId"] == gen.info.run_id
    assert tr.data.params["objective"] == "dad" and tr.data.params["student_init"] == "random"
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if m["type"] == "step"]
    history = client.get_metric_history(tr.info.run_id, "loss")
    assert sorted(h.step for h in history) == [m["step"] for m in steps]
    assert [h.value for h in sorted(history, key=lambda h: h.step)] == pytest.approx([m["loss"] for m in steps])
    epochs = client.get_metric_history(tr.info.run_id, "epoch/val_top1")
    assert [e.value for e in sorted(epochs, key=lambda e: e.step)] == pytest.approx(
        [m["val_top1"] for m in metrics if m["type"] == "epoch"])
    top = {a.path for a in client.list_artifacts(tr.info.run_id)}
    assert {"model", "model.json", "metrics.jsonl", "train_config.json"} <= top
    assert {a.path for a in client.list_artifacts(tr.info.run_id, "model")} == {"model/model.safetensors",
                                                                                "model/config.json"}
    local = client.download_artifacts(tr.info.run_id, "model/config.json", str(tmp_path / "dl"))
    assert json.loads(Path(local).read_text())["architecture"] == "test_resnet"
    assert json.loads((out / "mlflow.json").read_text())["run_id"] == tr.info.run_id
    # eval: nested under the train run; the suite's top-1 with its interval and image count
    assert ev.data.tags["mlflow.parentRunId"] == tr.info.run_id
    result = json.loads(next((tmp_path / "eval/results").glob("*.json")).read_text())
    row = result["metrics"][0]
    assert ev.data.metrics["photo.top1"] == pytest.approx(row["value"])
    assert [ev.data.metrics["photo.ci95_low"], ev.data.metrics["photo.ci95_high"]] == pytest.approx(row["ci95"])
    assert ev.data.metrics["photo.num_images"] == row["num_images"] == 18
    assert result["settings"]["mlflow"]["run_id"] == ev.info.run_id


def test_without_a_tracking_uri_nothing_is_tracked_and_mlflow_is_never_imported(tmp_path):
    code = ("import sys, services.tracking as t, services.trainer.launcher, services.generator.cli, "
            "services.evaluator.cli\n"
            "tr = t.Tracker.start('dad/x', 'r')\n"
            "tr.log_metrics({'a': 1}); tr.log_params({'b': 2}); tr.log_files({'c': b''}); tr.end()\n"
            "assert not tr.active and tr.run_id is None\n"
            "assert 'mlflow' not in sys.modules, 'mlflow imported without a tracking URI'\n")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(Path(__file__).parents[2]),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_params_are_flattened_and_cut_to_mlflows_limit():
    from services.tracking import flatten

    flat = flatten({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": "x" * 7000, "f": {}})
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "d": "null", "e": "x" * 6000, "f": "{}"}


def test_an_experiment_report_is_a_run_in_its_sets_experiment_with_its_figures(mlflow_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from experiments.report import track_report

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    folder = tmp_path / "pacs-report"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps({"table": {"dad": {"photo": [70.0, 72.0], "shift_avg": [25.0, 27.0]},
                                                              "teacher": {"photo": 80.0}}}))
    (folder / "report.md").write_text("# report")
    (folder / "results_bar.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "run.json").write_text("{}")  # the store's record, not the report's
    run_id = track_report(folder, "pacs-set", "pacs-report", "experiments.pacs")
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(run_id)
    assert run.info.experiment_id == client.get_experiment_by_name("dad/pacs-set").experiment_id
    assert run.data.metrics == {"dad.photo.top1": 71.0, "dad.shift_avg.top1": 26.0, "teacher.photo.top1": 80.0}
    assert {a.path for a in client.list_artifacts(run_id)} == {"report.json", "report.md", "results_bar.png"}
