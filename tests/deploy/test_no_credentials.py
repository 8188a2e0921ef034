"""No credentials in deploy/: keys, passwords and tokens reach pods from Secrets (secretKeyRef), compose from
the user's env file (required `${VAR:?message}` interpolation), VMs from instance profiles and a token file
on the user's machine. Nothing in the repository is a credential, or looks like one."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECRET_WORDS = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|DATABASE_URL|CREDENTIAL", re.I)
# Names of settings that are not secret although they contain one of the words above.
NOT_SECRET = {"AWS_ACCESS_KEY_ID_FILE"}
LEAK_PATTERNS = {
    "an AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    # user:password@ in a URL, unless the password is a $VARIABLE or a PLACEHOLDER in capitals
    "a URL with a literal password": re.compile(r"://[^/\s:@]+:(?!\$)(?![A-Z_]+@)[^@\s/]+@"),
    # KEY: value where KEY ends like a secret (…_SECRET_ACCESS_KEY, password, auth_token, secretKey) and the
    # value is a literal, not a ${VAR} reference: `secretName: x` or `key: AWS_SECRET_ACCESS_KEY` are fine.
    "a literal secret assignment": re.compile(
        r"(?i)[\w.-]*(secret|secret_?key|secret_access_key|password|passwd|token|api_?key)['\"]?\s*[:=]\s*['\"]?"
        r"(?![$\s'\"{<])[A-Za-z0-9+/_\-]{8,}"),
    "a Ray/GitHub/Slack style token": re.compile(r"\b(ghp_|github_pat_|xox[bap]-)[A-Za-z0-9_]{10,}"),
}


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


@pytest.mark.parametrize("path", deploy_files(), ids=lambda p: p.name)
def test_no_file_holds_anything_that_looks_like_a_credential(path):
    text = path.read_text(errors="replace")
    for what, pattern in LEAK_PATTERNS.items():
        hits = [m.group(0) for m in pattern.finditer(text)]
        assert not hits, f"{path.name} holds {what}: {hits}"


def _env_entries(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield from (e for e in value if isinstance(e, dict))
            else:
                yield from _env_entries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _env_entries(item)


def test_kubernetes_secrets_are_referenced_never_written(k8s_documents):
    assert not [d for _, d in k8s_documents if d["kind"] == "Secret"], "create Secrets with kubectl (README)"
    secret_envs = 0
    for name, doc in k8s_documents:
        for entry in _env_entries(doc):
            if SECRET_WORDS.search(entry["name"]) and entry["name"] not in NOT_SECRET:
                assert "value" not in entry, f"{name}: {entry['name']} is written in the file"
                assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name}: {entry['name']} not from a Secret"
                secret_envs += 1
    assert secret_envs >= 10
    for name, doc in k8s_documents:
        if doc["kind"] == "ConfigMap":
            secretish = [k for k in doc["data"] if SECRET_WORDS.search(k)]
            assert not secretish, f"{name}: {secretish} belong in a Secret, not the ConfigMap"


def test_s3_credentials_reach_every_ray_pod_from_the_secret(k8s_documents):
    for name, doc in k8s_documents:
        if not doc["apiVersion"].startswith("ray.io/"):
            continue
        cluster = doc["spec"].get("rayClusterSpec", doc["spec"])
        for template in [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]:
            env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "dad-s3", "key": key}, name


def test_compose_takes_every_credential_from_the_users_env_file(compose_file):
    checked = 0
    for svc, spec in compose_file["services"].items():
        env = spec.get("environment", {})
        assert isinstance(env, dict), f"{svc}: write environment as a mapping"
        for key, value in env.items():
            if SECRET_WORDS.search(key):
                # required interpolation: `docker compose up` stops with a message naming the variable
                assert re.search(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{svc}: {key} must be ${{VAR:?message}}"
                checked += 1
    assert checked >= 8


def test_the_launcher_uses_instance_profiles_and_a_token_file_not_keys(launcher_file):
    text = (DEPLOY / "cluster-launcher.aws.yaml").read_text()
    assert "AWS_SECRET_ACCESS_KEY" not in text and "aws_secret_access_key" not in text.lower()
    assert launcher_file["available_node_types"]["gpu"]["node_config"]["IamInstanceProfile"]["Arn"]


def test_the_leak_patterns_catch_leaks():
    samples = {"an AWS access key id": "AKIAABCDEFGHIJKLMNOP",
               "a URL with a literal password": "postgresql+psycopg://dad:hunter2hunter2@db:5432/dad",
               "a literal secret assignment": "AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMIK7MDENGbPxRfiCY"}
    for what, sample in samples.items():
        assert LEAK_PATTERNS[what].search(sample), what
    for fine in ("DAD_DATABASE_URL: postgresql+psycopg://dad:${POSTGRES_PASSWORD:?set it}@postgres:5432/dad",
                 "postgresql+psycopg://dad:$PGPASSWORD@db:5432/dad", "postgresql+psycopg://dad:PASSWORD@HOST:5432/dad",
                 "RAY_AUTH_TOKEN: ${RAY_AUTH_TOKEN:?set RAY_AUTH_TOKEN}", "secretName: dad-ray-token",
                 "key: AWS_SECRET_ACCESS_KEY"):
        assert not any(p.search(fine) for p in LEAK_PATTERNS.values()), fine
