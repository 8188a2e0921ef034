"""No request gives a 500 or an answer the OpenAPI document does not promise: bounded integers, strict
numbers, one rule for control characters in schema and validation, 405 with Allow, 422 for bad bodies."""
from __future__ import annotations

import re

import pytest

HUGE = "9223372036854775808"  # 2**63: overflowed SQLite's INTEGER (a 500) before the bounds


@pytest.mark.parametrize("url", ["/runs?offset=" + HUGE, "/sample-sets?offset=" + HUGE,
                                 "/sample-sets/synthetic/samples?offset=" + HUGE,
                                 "/sample-sets/synthetic/samples?class=" + HUGE,
                                 "/runs?limit=" + HUGE, "/runs?offset=-1"])
def test_out_of_range_query_integers_are_422(client, url):
    assert client.get(url).status_code == 422


def test_largest_accepted_offset_answers(client):
    from services.api.deps import MAX_QUERY_INT

    assert client.get(f"/runs?offset={MAX_QUERY_INT}").json() == {"data": [], "count": 0}
    assert client.get(f"/sample-sets/synthetic/samples?class={MAX_QUERY_INT}").json()["count"] == 0


@pytest.mark.parametrize("config", [
    {"source": "/d", "gpus_per_actor": False}, {"source": "/d", "limit": True}, {"source": "/d", "limit": "5"},
    {"source": "/d", "limit": 2**63}, {"source": "/d", "shard_size": 1.0}, {"source": "/d\x7f"},
    {"source": "/d", "overrides": {"attack.steps": "a\x7fb"}},
])
def test_no_coercion_and_no_out_of_range_body_values(client, auth, launcher, config):
    r = client.post("/runs", json={"id": "g", "kind": "generate", "config": config}, headers=auth)
    assert r.status_code == 422, r.text
    assert launcher.jobs == {}


def test_body_integers_are_bounded_in_the_schema(client):
    """Every integer of a run config has a maximum, so a client (or a fuzzer) knows the range."""
    spec = client.get("/openapi.json").json()

    def integers(node, path=""):
        if isinstance(node, dict):
            if node.get("type") == "integer":
                yield path, node
            for k, v in node.items():
                yield from integers(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from integers(v, f"{path}/{i}")

    found = [(p, n) for p, n in integers(spec["components"]["schemas"]) if "RunConfig" in p]
    assert found and all("maximum" in n for _, n in found), [p for p, n in found if "maximum" not in n]


def test_control_characters_same_rule_in_schema_and_validation(client, auth):
    """A string the OpenAPI pattern refuses is refused by validation, and the other way round."""
    from schemas.api import SUITE_PATTERN, URI_PATTERN

    spec = client.get("/openapi.json").json()
    source = spec["components"]["schemas"]["GenerateRunConfig"]["properties"]["source"]
    assert source["pattern"] == URI_PATTERN
    for value, ok in [("/data/x", True), ("/data/\x7fx", False), ("/data/\x1fx", False), ("-x", False),
                      ("/data/\u00e9", True)]:
        assert bool(re.search(URI_PATTERN, value)) == ok
        r = client.post("/runs", json={"id": "c", "kind": "generate", "config": {"source": value}}, headers=auth)
        assert (r.status_code != 422) == ok, (value, r.text)
    for value, ok in [("imagenet-r", True), ("imagenet-r=/x\x7f", False), ("imagefolder:/x", True)]:
        assert bool(re.search(SUITE_PATTERN, value)) == ok


@pytest.mark.parametrize("method, path, allowed", [("OPTIONS", "/runs", {"GET", "POST"}),
                                                  ("PUT", "/runs", {"GET", "POST"}),
                                                  ("DELETE", "/runs/x", {"GET"})])
def test_405_lists_every_allowed_method(client, method, path, allowed):
    r = client.request(method, path)
    assert r.status_code == 405
    assert allowed <= {m.strip() for m in r.headers["allow"].split(",")}


@pytest.mark.parametrize("body", [b"{bad", b'{"id": "\xff"}', b"[" * 100_000 + b"]" * 100_000])
def test_malformed_json_is_422(client, auth, body):
    r = client.post("/runs", content=body, headers={**auth, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("query", ["class=0.0", "offset=1_000", "limit=+5", "offset=%201",
                                   "min_confidence=0.5&min_confidence=0.1", "min_confidence=1_0"])
def test_query_numbers_are_read_as_the_schema_types_say(client, query):
    """Pydantic's lax parsing took '0.0' as 0 and a repeated parameter as its last value: both refused now."""
    r = client.get(f"/sample-sets/synthetic/samples?{query}")
    assert r.status_code == 422, r.text
    assert client.get("/sample-sets/synthetic/samples?class=0&min_confidence=0.5&offset=2").status_code == 200


def test_every_media_type_a_run_file_is_served_with_is_documented(client):
    from services.api.routes.run_outputs import RUN_FILES

    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/runs/{run_id}/files/{name}"]["get"]["responses"]["200"]["content"]
    assert set(RUN_FILES.values()) <= set(content)


def test_every_integer_query_parameter_has_its_bounds_in_the_openapi_document(client):
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for param in op.get("parameters", []):
                schemas = param["schema"].get("anyOf", [param["schema"]])
                for s in schemas:
                    if s.get("type") in ("integer", "number"):
                        assert "minimum" in s and "maximum" in s, (method, path, param["name"], s)
