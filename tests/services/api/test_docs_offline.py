"""/docs (Swagger UI) and /redoc render with no network: their JavaScript and CSS come from the server itself
(fastapi-offline's packaged assets), in headless Chromium with every request to another host refused."""
from __future__ import annotations

from urllib.parse import urlparse


from browser_helpers import CHROMIUM, CHROMIUM_ARGS, needs_chromium


def test_docs_pages_reference_only_local_assets(client):
    for path in ("/docs", "/redoc"):
        html = client.get(path).text
        assert "cdn." not in html and "googleapis" not in html, path
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static-offline-docs/redoc.standalone.js").status_code == 200


@needs_chromium
def test_docs_and_redoc_render_offline_in_chromium(live_server):
    from playwright.sync_api import sync_playwright

    url = live_server["url"]
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
