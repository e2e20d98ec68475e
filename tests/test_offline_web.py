"""/docs and /redoc load no asset from another host; CORS lets any page embed the widget but keeps
staff endpoints to the configured origins. A bare FastAPI app stands in for the full one here (the
full app's CORS on a real server is covered in test_api.py)."""

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from assistant.config import Settings
from serve.cors import PathScopedCORS
from serve.docs_pages import add_docs_pages

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}


def _app(**settings) -> FastAPI:
    app = FastAPI(title="t", docs_url=None, redoc_url=None)
    add_docs_pages(app)

    @app.post("/api/chat")
    def chat():
        return {}

    @app.post("/api/tickets/x")
    def staff():
        return {}

    app.add_middleware(PathScopedCORS, settings=Settings(**settings))
    return app


def test_docs_pages_use_only_local_assets(tmp_path):
    client = TestClient(_app(data_dir=tmp_path))
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r'(?:src|href)=["\']([^"\']+)', html) + re.findall(r"url: ['\"]([^'\"]+)", html)
        assert urls, page
        assert not [u for u in urls if u.startswith(("http:", "https:", "//"))], (page, urls)
        for url in re.findall(r'src="([^"]+\.js)"', html):
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 100_000, url


def test_the_widget_answers_any_page_by_default_but_staff_endpoints_do_not(tmp_path):
    client = TestClient(_app(data_dir=tmp_path))
    widget = client.options("/api/chat", headers={"Origin": "https://any-shop.example", **PREFLIGHT})
    assert widget.headers.get("access-control-allow-origin") == "*"
    staff = client.options("/api/tickets/x", headers={"Origin": "https://any-shop.example", **PREFLIGHT})
    assert "access-control-allow-origin" not in staff.headers


def test_widget_origins_can_be_narrowed(tmp_path):
    client = TestClient(_app(data_dir=tmp_path, widget_origins=["https://shop.example"]))
    ok = client.options("/api/chat", headers={"Origin": "https://shop.example", **PREFLIGHT})
    assert ok.headers.get("access-control-allow-origin") == "https://shop.example"
    other = client.options("/api/chat", headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert "access-control-allow-origin" not in other.headers
