"""POST/GET /runs and stop: auth, idempotency by run id, 422 naming the field, 404, 503 with nothing written."""
from __future__ import annotations

import json
import shlex

import pytest

GENERATE = {"id": "gen-1", "kind": "generate", "config": {"source": "/data/imagefolder", "preset": "tiny",
                                                            "overrides": {"attack.steps": 2}, "limit": 10}}


def test_every_mutating_endpoint_requires_the_bearer_token(client, auth):
    paths = client.get("/openapi.json").json()["paths"]
    mutating = [(m.upper(), p) for p, ops in paths.items() for m in ops if m in ("post", "put", "patch", "delete")]
    assert {p for _, p in mutating} == {"/runs", "/runs/{run_id}/stop"}  # a new one must be added here on purpose
    for method, path in mutating:
        assert paths[path][method.lower()]["security"] == [{"HTTPBearer": []}]  # documented in the OpenAPI spec
        url = path.replace("{run_id}", "gen-1")
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": "Basic eDp5"}):
            r = client.request(method, url, json=GENERATE, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/runs").json()["count"] == 0


def test_post_run_submits_one_ray_job_and_a_retry_returns_it(client, auth, launcher):
    r = client.post("/runs", json=GENERATE, headers=auth)
    assert r.status_code == 201, r.text
    run = r.json()
    assert (run["id"], run["kind"], run["status"], run["sample_set_id"]) == ("gen-1", "generate", "PENDING", "gen-1")
    again = client.post("/runs", json=GENERATE, headers=auth)
    assert again.status_code == 200 and again.json()["id"] == "gen-1"
    assert list(launcher.jobs) == ["gen-1"] and launcher.submit_calls == 1
    argv = shlex.split(launcher.jobs["gen-1"]["entrypoint"])
    assert argv[1:3] == ["-m", "services.generator"] and argv[3].startswith("--config=")
    assert argv[3].endswith("/runs/gen-1/run.json")
    job = _job_config(client, "gen-1")  # what the job reads with --config
    assert (job["source"], job["name"], job["overrides"]) == ("/data/imagefolder", "gen-1", {"attack.steps": 2})


def _job_config(client, run_id: str) -> dict:
    store = client.app.state.store
    return json.loads(store.fs.cat_file(store.run_path(run_id) + "/run.json"))["job"]


def test_a_retry_after_the_catalog_lost_the_row_converges_on_the_same_job(client, auth, launcher):
    assert client.post("/runs", json=GENERATE, headers=auth).status_code == 201
    from services.api.catalog.models import Run

    with client.app.state.sessions() as session:  # as if the server died between Ray and the catalog
        session.query(Run).delete()
        session.commit()
    r = client.post("/runs", json=GENERATE, headers=auth)
    assert r.status_code == 201, r.text
    assert list(launcher.jobs) == ["gen-1"]  # Ray said "already exists" with the same config hash: no new job


def test_the_same_id_with_another_config_is_a_conflict(client, auth, launcher):
    assert client.post("/runs", json=GENERATE, headers=auth).status_code == 201
    other = {**GENERATE, "config": {**GENERATE["config"], "limit": 11}}
    r = client.post("/runs", json=other, headers=auth)
    assert r.status_code == 409 and "gen-1" in r.json()["detail"]
    assert launcher.submit_calls == 1


@pytest.mark.parametrize("body, loc, words", [
    ({"id": "x", "kind": "generate", "config": {}}, ["body", "generate", "config", "source"], "required"),
    ({"id": "x", "kind": "generate", "config": {"source": "/d", "sourec": 1}}, ["body", "generate", "config", "sourec"], "extra"),
    ({"id": "x", "kind": "generate", "config": {"source": "/d", "overrides": {"attack.stepz": 2}}},
     ["body", "generate", "config", "overrides"], "stepz"),
    ({"id": "x", "kind": "generate", "config": {"source": "/d", "preset": "nope"}}, ["body", "generate", "config", "preset"], "nope"),
    ({"id": "x", "kind": "generate", "config": {"source": "/d", "limit": 0}}, ["body", "generate", "config", "limit"], "greater"),
    ({"id": "x", "kind": "generate", "config": {"source": "--out=/etc"}}, ["body", "generate", "config", "source"], "'-'"),
    ({"id": "x", "kind": "generate", "config": {"source": "http://evil/x"}}, ["body", "generate", "config", "source"], "scheme"),
    ({"id": "x", "kind": "generate", "config": {"source": "/d", "overrides": {"discretizer.trust_checkpoint": True}}},
     ["body", "generate", "config", "overrides", "discretizer.trust_checkpoint"], "cannot be set"),
    ({"id": "../x", "kind": "generate", "config": {"source": "/d"}}, ["body", "generate", "id"], "pattern"),
    ({"id": "x", "kind": "deploy", "config": {}}, ["body"], "generate"),
    ({"id": "x", "kind": "train", "config": {"source": "/d", "sample_set": "missing"}}, ["body", "train", "config", "sample_set"], "missing"),
    ({"id": "x", "kind": "train", "config": {"source": "/d", "objective": "magic"}}, ["body", "train", "config", "objective"], "magic"),
    ({"id": "x", "kind": "eval", "config": {"suites": ["imagenet-r"]}}, ["body", "eval", "config"], "exactly one"),
    # The job's own rules, checked before anything is submitted (the job used to exit 2 after a 201):
    ({"id": "x", "kind": "train", "config": {"source": "/d", "objective": "dad"}},
     ["body", "train", "config", "sample_set"], "adversarial samples"),
    ({"id": "x", "kind": "train", "config": {"source": "/d", "objective": "kd", "teacher_logits": "stored"}},
     ["body", "train", "config", "sample_set"], "stored logits"),
    ({"id": "x", "kind": "train", "config": {"source": "/d", "objective": "kd", "sample_set": "synthetic",
                                              "hflip": True}}, ["body", "train", "config", "hflip"], "online"),
    ({"id": "x", "kind": "train", "config": {"source": "/d", "objective": "dat", "mixup": 0.2}},
     ["body", "train", "config", "mixup"], "hard labels"),
    ({"id": "x", "kind": "generate", "config": {"source": "/d", "overrides": {"attack.step_size": "1e-05"}}},
     ["body", "generate", "config", "overrides"], "attack.step_size: expected float"),
    ({"id": "x", "kind": "generate", "config": {"source": "/d", "overrides": {"attack.seed": "0"}}},
     ["body", "generate", "config", "overrides"], "attack.seed"),
    ({"id": "x", "kind": "generate", "config": {"source": "/d", "overrides": {"attack.epsilon": None}}},
     ["body", "generate", "config", "overrides"], "epsilon"),
    ({"id": "x", "kind": "eval", "config": {"model": "/m", "suites": ["imagefolder:/a,/b"]}}, ["body", "eval", "config", "suites"], "comma"),
])
def test_invalid_config_is_422_naming_the_field(client, auth, launcher, body, loc, words):
    r = client.post("/runs", json=body, headers=auth)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(e["loc"][:len(loc)] == loc and words.lower() in json.dumps(e).lower() for e in errors), errors
    assert launcher.jobs == {} and client.get("/runs").json()["count"] == 0


def test_a_float_override_reaches_the_job_as_a_float(client, auth, launcher):
    """Measured before: {"attack.step_size": 1e-05} answered 201, reached the job as the text `1e-05`, which
    YAML read back as a string, and the job exited 2. Now the value travels as JSON in the job's config."""
    body = {"id": "gen-f", "kind": "generate", "config": {"source": "/d", "overrides": {"attack.step_size": 1e-05}}}
    assert client.post("/runs", json=body, headers=auth).status_code == 201
    from services.generator.cli import build_parser, config_from_args
    from services.jobs.presets import resolve_preset

    argv = shlex.split(launcher.jobs["gen-f"]["entrypoint"])
    config = config_from_args(build_parser().parse_args(argv[3:]))
    assert resolve_preset(config.preset, config.overrides).attack.step_size == 1e-05


def test_unknown_ids_are_404(client, auth):
    assert client.get("/runs/nope").status_code == 404
    assert client.post("/runs/nope/stop", headers=auth).status_code == 404
    assert client.get("/sample-sets/nope").status_code == 404
    assert client.get("/sample-sets/nope/samples").status_code == 404
    assert client.get("/samples/0123456789abcdef0123456789abcdef/image").status_code == 404


def test_ray_unreachable_is_503_and_nothing_is_written(client, auth, launcher, store):
    launcher.reachable = False
    r = client.post("/runs", json=GENERATE, headers=auth)
    assert r.status_code == 503
    assert "unreachable" in r.json()["detail"]
    assert client.get("/runs").json()["count"] == 0
    assert not (store / "runs").exists()
    launcher.reachable = True  # the retry works and makes the one job
    assert client.post("/runs", json=GENERATE, headers=auth).status_code == 201
    launcher.reachable = False
    assert client.post("/runs/gen-1/stop", headers=auth).status_code == 503
    detail = client.get("/runs/gen-1")  # reads still work, saying why the log is missing
    assert detail.status_code == 200 and "unreachable" in detail.json()["log_error"]


def test_a_real_ray_client_on_a_closed_port_gives_503(make_client, store, auth):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    from services.api.launcher import RayJobLauncher

    c = make_client(store, launcher_=RayJobLauncher(f"http://127.0.0.1:{port}", timeout_s=2))
    r = c.post("/runs", json=GENERATE, headers=auth)
    assert r.status_code == 503 and f"127.0.0.1:{port}" in r.json()["detail"]
    assert c.get("/runs").json()["count"] == 0 and not (store / "runs").exists()
    detail = c.get("/sample-sets/synthetic")  # the catalog still serves while Ray is down
    assert detail.status_code == 200


def test_list_filter_paginate_detail_and_stop(client, auth, launcher):
    for i in range(3):
        assert client.post("/runs", json={**GENERATE, "id": f"gen-{i}", "config": {**GENERATE["config"], "set_name": f"s{i}"}},
                           headers=auth).status_code == 201
    train = {"id": "train-1", "kind": "train", "config": {"source": "/d", "sample_set": "synthetic", "preset": "tiny",
                                                           "epochs": 1, "cpus_per_worker": 0.5}}
    assert client.post("/runs", json=train, headers=auth).status_code == 201, client.post("/runs", json=train, headers=auth).text
    launcher.jobs["gen-0"]["status"] = "RUNNING"
    page = client.get("/runs", params={"kind": "generate", "limit": 2}).json()
    assert page["count"] == 3 and len(page["data"]) == 2
    assert client.get("/runs", params={"kind": "train"}).json()["data"][0]["id"] == "train-1"
    detail = client.get("/runs/gen-0").json()
    assert detail["status"] == "RUNNING" and detail["config"]["limit"] == 10
    assert detail["log_tail"].splitlines()[-1] == "line 499" and len(detail["log_tail"].splitlines()) == 200
    assert client.get("/runs", params={"status": "RUNNING"}).json()["count"] == 1
    stopped = client.post("/runs/gen-0/stop", headers=auth)
    assert stopped.status_code == 200 and stopped.json()["status"] == "STOPPED"
    assert json.loads((client.app.state.store.fs.cat_file(
        client.app.state.store.run_path("gen-0") + "/status.json")))["status"] == "STOPPED"
    job = _job_config(client, "train-1")
    assert job["samples"].endswith("/sample-sets/synthetic/manifest.json") and job["out"].endswith("/runs/train-1")


def test_two_runs_cannot_generate_the_same_set_at_once(client, auth):
    assert client.post("/runs", json=GENERATE, headers=auth).status_code == 201
    clash = {**GENERATE, "id": "gen-2", "config": {**GENERATE["config"], "set_name": "gen-1"}}
    assert client.post("/runs", json=clash, headers=auth).status_code == 409


def test_insecure_flag_allows_mutations_without_a_token_and_says_so(make_client, store, caplog):
    with caplog.at_level("WARNING"):
        c = make_client(store, insecure_no_auth=True, auth_token=None)
    assert "INSECURE" in caplog.text
    assert c.get("/health").json()["auth"] == "disabled"
    assert c.post("/runs", json=GENERATE).status_code == 201


def test_the_server_refuses_to_start_without_a_token_or_the_flag(tmp_path, monkeypatch):
    from pydantic import ValidationError

    from services.api.__main__ import main
    from services.api.settings import Settings

    monkeypatch.delenv("DAD_AUTH_TOKEN", raising=False)
    with pytest.raises(ValidationError, match="DAD_AUTH_TOKEN"):
        Settings(store_uri=str(tmp_path))
    assert main(["--store", str(tmp_path)]) == 2
    settings = Settings(store_uri=str(tmp_path / "s"), auth_token="x" * 16)
    assert settings.database_url == f"sqlite:///{tmp_path}/s/catalog.db"
    monkeypatch.setenv("DAD_DATABASE_URL", "sqlite:////elsewhere.db")
    assert Settings(store_uri=str(tmp_path), auth_token="x" * 16).database_url == "sqlite:////elsewhere.db"


@pytest.mark.parametrize("overrides", [
    {"attack.steps": 0},                                        # Q(Q(x)): DAD's pipeline with no delta
    {"attack.delta": "random"},                                 # random delta of the attack's norm
    {"attack.through_discretizer": True, "attack.steps": 3},    # attack through Q, several steps
])
def test_the_attack_controls_are_accepted_over_rest_and_reach_the_job(client, auth, launcher, overrides):
    from services.generator.cli import build_parser, config_from_args
    from services.jobs.presets import resolve_preset

    body = {"id": "gen-c", "kind": "generate", "config": {"source": "/d", "overrides": overrides,
                                                          "requantize_every": 4}}
    assert client.post("/runs", json=body, headers=auth).status_code == 201
    config = config_from_args(build_parser().parse_args(shlex.split(launcher.jobs["gen-c"]["entrypoint"])[3:]))
    attack = resolve_preset(config.preset, config.overrides).attack
    assert {k: getattr(attack, k.split(".")[1]) for k in overrides} == overrides and config.requantize_every == 4


def test_a_bad_control_is_422_naming_it(client, auth, launcher):
    body = {"id": "x", "kind": "generate", "config": {"source": "/d", "overrides": {"attack.delta": "noise"}}}
    r = client.post("/runs", json=body, headers=auth)
    assert r.status_code == 422 and "attack.delta" in r.text
    train = {"id": "t", "kind": "train", "config": {"source": "/d", "sample_set": "synthetic", "objective": "dad",
                                                    "adversarial_rows": "matched"}}
    r = client.post("/runs", json=train, headers=auth)
    assert r.status_code == 422 and "count-matched" in r.text


def test_the_count_matched_no_filter_control_is_accepted_over_rest(client, auth, launcher):
    train = {"id": "t", "kind": "train", "config": {"source": "/d", "sample_set": "synthetic", "objective": "dad",
                                                    "adversarial_rows": "count-matched"}}
    r = client.post("/runs", json=train, headers=auth)
    assert r.status_code == 201, r.text
    assert _job_config(client, "t")["adversarial_rows"] == "count-matched"


@pytest.mark.parametrize("state, published, expected", [
    ("succeeded", True, "SUCCEEDED"), ("failed", False, "FAILED"), ("running", False, "UNKNOWN"),
    ("succeeded", False, "UNKNOWN"),  # a status saying "succeeded" without a manifest is not believed
])
def test_a_generate_run_ray_no_longer_knows_takes_its_status_from_its_set(client, auth, launcher, store,
                                                                         sample_set_writer, state, published,
                                                                         expected):
    """Measured before: a run whose Ray cluster restarted stayed UNKNOWN forever, even when its set said it
    had finished (e.g. the control plane was down when the job ended, and Ray was restarted since)."""
    from datetime import datetime, timezone

    from schemas.generation_status import GenerationStatus

    assert client.post("/runs", json=GENERATE, headers=auth).status_code == 201
    launcher.jobs.pop("gen-1")  # Ray forgot it
    if published:
        sample_set_writer(store, "gen-1")
    now = datetime.now(timezone.utc)
    status = GenerationStatus(state=state, set_name="gen-1", set_uri=str(store / "sample-sets" / "gen-1"),
                              message="no images" if state == "failed" else "", started_at=now, updated_at=now)
    (store / "sample-sets" / "gen-1").mkdir(parents=True, exist_ok=True)
    (store / "sample-sets" / "gen-1" / "_status.json").write_text(status.model_dump_json())
    run = client.get("/runs/gen-1").json()
    assert run["status"] == expected, run
    on_disk = store / "runs" / "gen-1" / "status.json"
    assert on_disk.exists() == (expected != "UNKNOWN")  # what `catalog rebuild` reads back
    if expected == "FAILED":
        assert "no images" in run["message"]
