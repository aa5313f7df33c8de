"""The gateway's API docs work in a closed network (issue 17 §5): /docs (Swagger UI) loads
its script, style and icon from the gateway itself — the assets ship in a PyPI package
(fastapi-offline) — and no page of the gateway references another host. There is no /redoc:
ReDoc's bundle fetches its logo from its vendor's CDN (the browser test saw it do so).
(The console's pages: tests/unit/console; both in a real browser: test_console_browser.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from broker.gateway.api import create_app
from broker.models import PartyRole
from tests.crypto_net import A
from tests.unit.gateway.test_api import TOKEN, Stack

IND = A[PartyRole.IND]

PAGES = ("/docs", "/docs/oauth2-redirect", "/openapi.json", "/healthz", "/readyz")
"""Every page of the gateway that is not a /v1 route (those answer JSON, with a token)."""

REFERENCE = re.compile(
    r"""(?:src|href|action)\s*=\s*["']([^"']*)["']|url\(\s*["']?([^"')]*)""", re.I
)
"""What a page makes the browser load: src, href and form actions, and CSS url(...)."""

OUTSIDE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)
"""A reference to another host: absolute (http://, https://, …) or protocol-relative (//)."""

SWAGGER_JS_URL = re.compile(r"""\burl\s*:\s*['"]([^'"]+)['"]""")
"""The OpenAPI document Swagger UI's inline script fetches (``url: '/openapi.json'``)."""


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    stack = Stack(tmp_path)
    await stack.provision()
    try:
        app = create_app(await stack.started(IND), token=TOKEN)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client
    finally:
        await stack.aclose()


def references(text: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(text)] + SWAGGER_JS_URL.findall(text)


async def test_no_page_of_the_gateway_references_another_host(api: httpx.AsyncClient) -> None:
    loaded: set[str] = set()
    for path in PAGES:
        page = await api.get(path)
        assert page.status_code == 200, (path, page.status_code)
        for ref in references(page.text):
            assert not OUTSIDE.match(ref), f"{path} references another host: {ref}"
            if ref.startswith("/"):
                loaded.add(ref)
    # what the docs load is the gateway's own, and there
    assert {"/static-offline-docs/swagger-ui-bundle.js", "/static-offline-docs/swagger-ui.css",
            "/static-offline-docs/favicon.png", "/openapi.json"} <= loaded  # fmt: skip
    for ref in sorted(loaded):
        asset = await api.get(ref)
        assert asset.status_code == 200, ref
        if ref.endswith(".css"):
            assert not any(OUTSIDE.match(r) for r in references(asset.text)), ref


async def test_swagger_ui_asks_no_validator_from_outside(api: httpx.AsyncClient) -> None:
    """Swagger UI shows a badge fetched from validator.swagger.io unless told not to."""
    page = (await api.get("/docs")).text
    assert '"validatorUrl": null' in page
    assert (await api.get("/redoc")).status_code == 404  # off: it loads a logo from outside
