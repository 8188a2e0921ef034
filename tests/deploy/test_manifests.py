"""deploy/ parses and validates, offline, with maintained validators the project installs:

- Kubernetes objects (ConfigMap, Deployment, Service) and every pod template inside the KubeRay objects:
  kubernetes-validate (the Kubernetes OpenAPI schemas, vendored in its wheel), strict mode.
- RayCluster / RayJob: no registry package ships KubeRay's CRD schemas, so they are checked against the
  hand-written subset schema beside this file (kuberay-v1.subset.schema.json) — a typo or a wrong type in a
  field we set fails, but it is our reading of KubeRay's API reference, not KubeRay's own schema.
- compose.yaml: the Compose Specification schema vendored by check-jsonschema.
- cluster-launcher.aws.yaml: Ray's own `ray up` validation (prepare_config + validate_config, ray-schema.json).

And every command in them names an existing `services.<module>` with only the flags its parser (its
`--help`) lists; `ray start` lines only the flags Ray's CLI has.
"""
from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERAY_SCHEMA = json.loads((Path(__file__).parent / "kuberay-v1.subset.schema.json").read_text())
K8S_VERSIONS = ("1.30", "1.37")  # oldest we claim, newest kubernetes-validate ships
JOBS = ("generator", "trainer", "evaluator")


# -- helpers -------------------------------------------------------------------------------------------------
def k8s_validate(obj: dict[str, Any]) -> None:
    import kubernetes_validate

    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def kuberay_validate(doc: dict[str, Any]) -> None:
    """Validate against the subset schema's definition for this kind (clearer errors than its top-level oneOf)."""
    schema = {k: v for k, v in KUBERAY_SCHEMA.items() if k != "oneOf"}
    assert doc.get("kind") in schema["$defs"], f"not a KubeRay kind this schema covers: {doc.get('kind')!r}"
    jsonschema.validate(doc, {**schema, "$ref": f"#/$defs/{doc['kind']}"})


def as_pod_template(template: dict[str, Any], name: str) -> dict[str, Any]:
    """A KubeRay pod template as the core/v1 PodTemplate object kubernetes-validate knows."""
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, "template": template}


def pod_templates(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = doc["spec"]
    cluster = spec.get("rayClusterSpec", spec) if doc["kind"] == "RayJob" else spec
    yield "head", cluster["headGroupSpec"]["template"]
    for group in cluster.get("workerGroupSpecs", []):
        yield f"worker-{group['groupName']}", group["template"]
    if "submitterPodTemplate" in spec:
        yield "submitter", spec["submitterPodTemplate"]


def containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if doc["kind"] in ("RayCluster", "RayJob"):
        templates = [t for _, t in pod_templates(doc)]
    elif doc["kind"] == "Deployment":
        templates = [doc["spec"]["template"]]
    else:
        templates = []
    for t in templates:
        yield from t["spec"].get("containers", [])
        yield from t["spec"].get("initContainers", [])


def kuberay(k8s_documents) -> list[tuple[str, dict[str, Any]]]:
    return [(f, d) for f, d in k8s_documents if d["apiVersion"].startswith("ray.io/")]


def service_parser(module: str):
    """The argparse parser behind `python -m services.<module> --help`."""
    for candidate in (f"services.{module}.cli", f"services.{module}.__main__"):
        try:
            mod = importlib.import_module(candidate)
        except ModuleNotFoundError:
            continue
        if hasattr(mod, "build_parser"):
            return mod.build_parser()
    raise AssertionError(f"services.{module} has no build_parser() in cli.py or __main__.py")


def parser_flags(module: str) -> set[str]:
    return {opt for action in service_parser(module)._actions for opt in action.option_strings}


def ray_start_flags() -> set[str]:
    from ray.scripts.scripts import start

    return {opt for param in start.params for opt in getattr(param, "opts", []) + getattr(param, "secondary_opts", [])}


def commands_in(k8s_documents, compose_file, launcher_file) -> list[tuple[str, list[str]]]:
    """(where, argv) of every command deploy/ runs: RayJob entrypoints, container commands, compose commands,
    the launcher's start commands (split at ';' and '&&'), and KubeRay's rayStartParams as `ray start` flags."""
    found: list[tuple[str, list[str]]] = []
    for name, doc in k8s_documents:
        where = f"{name}:{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "RayJob":
            found.append((f"{where} entrypoint", shlex.split(doc["spec"]["entrypoint"])))
        for c in containers(doc):
            if c.get("command") or c.get("args"):
                found.append((f"{where} container {c['name']}", [*c.get("command", []), *c.get("args", [])]))
        if doc["kind"] in ("RayCluster", "RayJob"):
            cluster = doc["spec"].get("rayClusterSpec", doc["spec"])
            groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
            for g in groups:
                params = [f"--{k}={v}" for k, v in (g.get("rayStartParams") or {}).items()]
                found.append((f"{where} rayStartParams", ["ray", "start", *params]))
    for svc, spec in compose_file["services"].items():
        command = spec.get("command")
        if isinstance(command, list) and command[:2] != ["bash", "-c"]:
            found.append((f"compose.yaml:{svc}", command))
        elif command:
            script = command[-1] if isinstance(command, list) else command
            found += [(f"compose.yaml:{svc}", argv) for argv in shell_commands(script.replace("$$", "$"))]
    for key in ("head_start_ray_commands", "worker_start_ray_commands", "setup_commands"):
        for line in launcher_file.get(key, []):
            found += [(f"cluster-launcher.aws.yaml:{key}", argv) for argv in shell_commands(line)]
    return found


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell line: split at ; && || | and after do/then/else, quotes respected."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    out: list[list[str]] = [[]]
    for token in lexer:
        if token in (";", "&&", "||", "|", "&", "(", ")", "do", "then", "else", "done", "fi"):
            out.append([])
        else:
            out[-1].append(token)
    return [argv for argv in out if argv]


def strip_env_assignments(argv: list[str]) -> list[str]:
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
        argv = argv[1:]
    return argv


# -- Kubernetes and KubeRay ----------------------------------------------------------------------------------
def test_deploy_holds_the_files_of_the_issue():
    names = {p.name for p in DEPLOY.iterdir()}
    assert {"Dockerfile", "README.md", "ray-cluster.dad.yaml", "ray-job.generator.yaml", "ray-job.trainer.yaml",
            "ray-job.evaluator.yaml", "compose.yaml", "cluster-launcher.aws.yaml", "dad-api.yaml",
            "dad-config.yaml"} <= names


def test_every_core_kubernetes_object_validates(k8s_documents):
    core = [(f, d) for f, d in k8s_documents if not d["apiVersion"].startswith("ray.io/")]
    assert {d["kind"] for _, d in core} == {"ConfigMap", "Deployment", "Service"}
    for name, doc in core:
        k8s_validate(doc)


def test_kuberay_objects_validate_and_their_pod_templates_are_valid_pod_templates(k8s_documents):
    docs = kuberay(k8s_documents)
    assert sorted(d["kind"] for _, d in docs) == ["RayCluster", "RayJob", "RayJob", "RayJob"]
    for name, doc in docs:
        kuberay_validate(doc)
        jsonschema.validate(doc, KUBERAY_SCHEMA)  # the file itself, as `check-jsonschema --schemafile` uses it
        for role, template in pod_templates(doc):
            k8s_validate(as_pod_template(template, f"{doc['metadata']['name']}-{role}"))


def test_the_validators_reject_broken_manifests(k8s_documents):
    """The checks above must be able to fail: a typo'd KubeRay field, a number where KubeRay wants a string,
    and a broken container in a pod template are all caught."""
    import kubernetes_validate

    job = copy.deepcopy(next(d for _, d in k8s_documents if d["kind"] == "RayJob"))
    job["spec"]["shutdownAfterJobFinish"] = True
    with pytest.raises(jsonschema.ValidationError, match="shutdownAfterJobFinish"):
        kuberay_validate(job)
    cluster = copy.deepcopy(next(d for _, d in k8s_documents if d["kind"] == "RayCluster"))
    cluster["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'string'"):
        kuberay_validate(cluster)
    template = copy.deepcopy(cluster["spec"]["workerGroupSpecs"][0]["template"])
    template["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRefs"] = {"name": "x", "key": "y"}
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_validate(as_pod_template(template, "broken"))


def test_kuberay_files_are_named_like_kuberays_samples(k8s_documents):
    for name, doc in kuberay(k8s_documents):
        if doc["kind"] == "RayCluster":
            assert name == f"ray-cluster.{doc['metadata']['name']}.yaml"
        else:
            job = name.removeprefix("ray-job.").removesuffix(".yaml")
            assert name.startswith("ray-job.") and job in JOBS and doc["metadata"]["name"] == f"dad-{job}"


@pytest.mark.parametrize("job", JOBS)
def test_rayjobs_submit_retry_stop_and_clean_up(job):
    doc = yaml.safe_load((DEPLOY / f"ray-job.{job}.yaml").read_text())
    spec = doc["spec"]
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["backoffLimit"] >= 1  # safe: the generator and trainer resume, the evaluator just re-scores
    assert spec["activeDeadlineSeconds"] > 0
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] >= 0
    assert "\n" not in spec["entrypoint"]  # Ray runs it with a shell: a newline would end the command
    assert shlex.split(spec["entrypoint"])[:3] == ["python", "-m", f"services.{job}"]
    assert spec["rayClusterSpec"]["authOptions"]["mode"] == "token"
    assert "runtimeEnvYAML" not in spec or "AWS_" not in spec["runtimeEnvYAML"]


def test_the_ray_cluster_has_a_cpu_head_and_a_gpu_worker_group(k8s_documents):
    for _, doc in kuberay(k8s_documents):
        cluster = doc["spec"].get("rayClusterSpec", doc["spec"])
        head = cluster["headGroupSpec"]
        assert head["rayStartParams"]["num-cpus"] == "0"
        assert all("nvidia.com/gpu" not in c.get("resources", {}).get("limits", {})
                   for c in head["template"]["spec"]["containers"])
        gpu = [g for g in cluster["workerGroupSpecs"] if g["groupName"] == "gpu"]
        assert len(gpu) == 1
        assert gpu[0]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert cluster["rayVersion"] == _locked("ray")


def test_one_image_everywhere_tagged_with_the_project_version(k8s_documents, compose_file, launcher_file):
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    images = {c["image"] for _, d in k8s_documents for c in containers(d)} | {launcher_file["docker"]["image"]}
    assert images == {f"registry.example.com/dad/dad:{version}"}
    ours = {s["image"] for s in compose_file["services"].values() if s.get("image", "").startswith("dad:")}
    assert ours == {f"dad:{version}"}


# -- commands ------------------------------------------------------------------------------------------------
def test_every_command_names_an_existing_module_and_only_flags_its_help_lists(k8s_documents, compose_file,
                                                                            launcher_file):
    commands = commands_in(k8s_documents, compose_file, launcher_file)
    modules_seen, ray_flags = set(), ray_start_flags()
    for where, argv in commands:
        argv = strip_env_assignments(argv)
        if argv[:2] == ["python", "-m"] and argv[2].startswith("services."):
            module = argv[2].removeprefix("services.")
            assert importlib.util.find_spec(f"services.{module}.__main__") is not None, f"{where}: no {argv[2]}"
            known = parser_flags(module)
            flags = {a.split("=", 1)[0] for a in argv[3:] if a.startswith("--")}
            assert flags <= known, f"{where}: {argv[2]} has no {sorted(flags - known)} (see its --help)"
            modules_seen.add(module)
        elif argv[:2] == ["ray", "start"]:
            flags = {a.split("=", 1)[0] for a in argv[2:] if a.startswith("--")}
            assert flags <= ray_flags, f"{where}: `ray start` has no {sorted(flags - ray_flags)}"
    assert {"generator", "trainer", "evaluator", "api"} <= modules_seen


def test_the_flag_check_catches_a_flag_the_service_does_not_have():
    assert "--source" in parser_flags("generator") and "--sources" not in parser_flags("generator")
    assert "--samples" in parser_flags("trainer") and "--host" in parser_flags("api")
    assert "--num-cpus" in ray_start_flags() and "--num-cpu" not in ray_start_flags()


def readme_lines() -> list[str]:
    """deploy/README.md's lines, with backslash continuations joined."""
    return (DEPLOY / "README.md").read_text().replace("\\\n", " ").splitlines()


def test_the_readmes_ray_job_submit_lines_name_existing_modules_and_flags():
    submits = [line.strip() for line in readme_lines() if line.strip().startswith("ray job submit ")]
    assert len(submits) >= 4
    known_submit = {"--address", "--submission-id", "--no-wait", "--working-dir", "--runtime-env-json"}
    modules = set()
    for line in submits:
        argv = shlex.split(line)
        cut = argv.index("--")
        assert {a for a in argv[3:cut] if a.startswith("--")} <= known_submit, line
        job = argv[cut + 1:]
        assert job[:2] == ["python", "-m"], line
        module = job[2].removeprefix("services.")
        flags = {a.split("=", 1)[0] for a in job[3:] if a.startswith("--")}
        assert flags <= parser_flags(module), f"{line}: no {sorted(flags - parser_flags(module))}"
        modules.add(module)
    assert modules == {"generator", "trainer", "evaluator"}


def test_the_readmes_rest_calls_send_valid_run_requests():
    from pydantic import TypeAdapter

    from schemas.api import RunCreate

    text = (DEPLOY / "README.md").read_text()
    bodies = [json.loads(m.group(1)) for m in re.finditer(r"/runs\" [^\n]* -d '(\{.*?\})'", text, re.S)]
    assert sorted(b["kind"] for b in bodies) == ["eval", "generate", "train"]
    from dad_core import get_preset

    for body in bodies:
        run = TypeAdapter(RunCreate).validate_python(body)  # what POST /runs accepts...
        if run.kind in ("generate", "train"):
            get_preset(run.config.preset, run.config.overrides or None)  # ...and its preset overrides resolve


# -- compose, launcher, image --------------------------------------------------------------------------------
def test_compose_file_follows_the_compose_specification(compose_file):
    from check_jsonschema.builtin_schemas import get_builtin_schema

    schema = get_builtin_schema("vendor.compose-spec")
    jsonschema.validate(compose_file, schema)
    broken = copy.deepcopy(compose_file)
    broken["services"]["api"]["restrat"] = "always"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_compose_runs_ray_head_api_object_store_and_postgresql(compose_file):
    services = compose_file["services"]
    assert {"ray-head", "api", "s3", "postgres"} <= set(services)
    assert services["ray-head"]["command"][:3] == ["ray", "start", "--head"]
    assert services["api"]["environment"]["DAD_RAY_ADDRESS"] == "http://ray-head:8265"
    assert services["api"]["environment"]["DAD_DATABASE_URL"].startswith("postgresql+psycopg://")
    for svc in services.values():  # nothing published beyond this host's loopback
        assert all(str(p).startswith("127.0.0.1:") for p in svc.get("ports", []))


def test_cluster_launcher_passes_rays_own_validation(launcher_file):
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(launcher_file)))
    broken = copy.deepcopy(launcher_file)
    broken["available_node_types"]["gpu"]["min_wrkers"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_launcher_nodes_run_the_image_with_token_auth(launcher_file):
    assert launcher_file["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert launcher_file["file_mounts"] == {"~/.ray/auth_token": "~/.ray/auth_token"}
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any("RAY_AUTH_MODE=token ray start" in line for line in launcher_file[key])


def _dockerfile_runs() -> str:
    return (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")


def _locked(package: str) -> str:
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        if line.lower().startswith(f"{package}=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{package} is not in requirements/lock.txt")


def test_the_image_installs_the_project_the_way_make_install_does():
    def what_is_installed(text: str) -> str:  # output flags (quiet, progress, cache) do not change what is installed
        return re.sub(r" --(quiet|no-cache-dir|progress-bar \S+)", "", text)

    makefile = (REPO / "Makefile").read_text()
    recipe = what_is_installed(makefile.split("\ninstall:", 1)[1].split("\n\n", 1)[0])
    image = what_is_installed(_dockerfile_runs())
    for step in ("install -r requirements/lock.txt", "install --no-deps -e .", "-m pip check"):
        assert step in recipe, f"Makefile's install no longer runs `{step}`: update deploy/Dockerfile with it"
        assert step in image, f"deploy/Dockerfile does not run `{step}` as `make install` does"
    assert "python3 -m venv .venv" in _dockerfile_runs()


def test_the_image_copies_only_what_exists_and_has_a_cuda_base_and_a_cpu_variant():
    text = _dockerfile_runs()
    sources = [src for line in text.splitlines() if line.startswith("COPY ")
               for src in line.split()[1:-1] if not src.startswith("--")]
    assert sources and all((REPO / s).exists() for s in sources), sources
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert all(f"!{s.rstrip('/')}" in {i.rstrip("/") for i in ignore} for s in sources)  # in the build context
    base = re.search(r"^ARG BASE_IMAGE=(\S+)", text, re.M).group(1)
    assert base.startswith("nvidia/cuda:") and "-ubuntu" in base
    assert "ENV PATH=/opt/dad/.venv/bin:$PATH" in text  # the python that `ray start` puts on jobs' PATH
    assert "BASE_IMAGE=ubuntu:24.04" in (DEPLOY / "README.md").read_text()  # the documented CPU variant
