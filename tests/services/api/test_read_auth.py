"""--auth-reads: the token guards reads too (header, or the UI's cookie for images); on by default off loopback."""
from __future__ import annotations

import pytest

from services.api.settings import Settings, is_loopback, with_read_auth_for

READS = ["/runs", "/runs/x", "/sample-sets", "/sample-sets/synthetic", "/sample-sets/synthetic/samples",
         "/results", "/samples/0123456789abcdef/image", "/runs/x/metrics", "/runs/x/files/model.json",
         "/results/csv"]


def test_reads_need_the_token_when_auth_reads_is_on(make_client, store, auth):
    client = make_client(store, auth_reads=True)
    for path in READS:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        assert client.get(path, headers=auth).status_code != 401, path
    token = auth["Authorization"].removeprefix("Bearer ")
    sample = client.get("/sample-sets/synthetic/samples", headers=auth).json()["data"][0]
    client.cookies.set("dad_token", token)  # what the web UI sets, so <img> requests carry it
    assert client.get(f"/samples/{sample['id']}/image").status_code == 200
    assert client.post("/runs/x/stop").status_code == 401  # mutations never take the cookie
    client.cookies.clear()
    assert client.get("/health").json()["auth_reads"] is True  # liveness stays open
    assert client.get("/ui/").status_code == 200


def test_reads_are_open_by_default_on_loopback(client):
    assert client.get("/runs").status_code == 200


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                            ("127.0.0.2", True), ("0.0.0.0", False), ("::", False),
                                            ("192.168.1.20", False), ("dad.example.org", False)])
def test_auth_reads_defaults_on_for_a_non_loopback_bind(tmp_path, host, loopback):
    base = Settings(store_uri=str(tmp_path), auth_token="t" * 16)
    assert is_loopback(host) == loopback
    assert with_read_auth_for(base, host).auth_reads is (not loopback)
    assert with_read_auth_for(base.model_copy(update={"auth_reads": False}), host).auth_reads is False


def test_auth_reads_needs_a_token(tmp_path):
    with pytest.raises(ValueError, match="needs a token"):
        Settings(store_uri=str(tmp_path), insecure_no_auth=True, auth_reads=True)
