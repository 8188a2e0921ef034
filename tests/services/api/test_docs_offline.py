"""/docs (Swagger UI) and /redoc render with no network: their JavaScript and CSS come from the server itself
(fastapi-offline's packaged assets), in headless Chromium with every request to another host refused."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def server_url(store, launcher, tmp_path):
    """A real uvicorn server (in a thread) with the fake launcher."""
    import uvicorn

    from services.api.app import create_app
    from services.api.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(store_uri=str(store), database_url=f"sqlite:///{tmp_path}/docs.db", auth_token="t" * 20,
                        ray_address="http://127.0.0.1:9", sync_interval_s=0)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, launcher=launcher), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_docs_pages_reference_only_local_assets(client):
    for path in ("/docs", "/redoc"):
        html = client.get(path).text
        assert "cdn." not in html and "googleapis" not in html, path
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static-offline-docs/redoc.standalone.js").status_code == 200


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium: scripts/install-system-deps.sh")
def test_docs_and_redoc_render_offline_in_chromium(server_url):
    from playwright.sync_api import sync_playwright

    url = server_url
    ours = urlparse(url).netloc
    refused: list[str] = []

    def only_ours(route):
        if urlparse(route.request.url).netloc == ours:
            route.continue_()
        else:
            refused.append((route.request.resource_type, route.request.url))
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("**/*", only_ours)
        page.goto(f"{url}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=20_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert "/runs" in paths and "/sample-sets" in paths and "/results" in paths
        page.goto(f"{url}/redoc")
        page.wait_for_selector("h1", timeout=20_000)
        page.wait_for_selector("[data-section-id^='operation/']", state="attached", timeout=20_000)
        assert page.locator("[data-section-id^='operation/']").count() >= 5
        browser.close()
    # ReDoc's "API docs by Redocly" footer links a logo image on its CDN; nothing else may leave the server.
    assert [r for r in refused if r[0] != "image"] == [], refused
