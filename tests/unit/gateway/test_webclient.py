"""The browser client route: `/` and `/static/...` serve the files, with cache and CSP headers,
and nothing outside the listed files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from parlour_gateway.app import create_ws_app
from parlour_gateway.webclient import (
    CONTENT_SECURITY_POLICY,
    WEBCLIENT_DIR,
    mount_web_client,
    static_files,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    mount_web_client(app)
    return TestClient(app)


@pytest.mark.parametrize(
    ("path", "name", "media"),
    [
        ("/", "index.html", "text/html"),
        ("/static/app.js", "app.js", "text/javascript"),
        ("/static/style.css", "style.css", "text/css"),
    ],
)
def test_webclient_serves_each_file(client: TestClient, path: str, name: str, media: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.content == (WEBCLIENT_DIR / name).read_bytes()
    assert response.headers["content-type"].startswith(media)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["etag"]


def test_webclient_csp_allows_only_self_and_websockets() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert set(directives["connect-src"].split()) == {"'self'", "ws:", "wss:"}


def test_webclient_revalidation_gets_304(client: TestClient) -> None:
    first = client.get("/static/app.js")
    again = client.get("/static/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    changed = client.get("/static/app.js", headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/static/index.html.bak",
        "/static/nope.js",
        "/static/..%2fwebclient.py",
        "/static/%2e%2e/webclient.py",
        "/static/",
    ],
)
def test_webclient_serves_nothing_else(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert b"import" not in response.content


def test_webclient_is_mounted_on_the_gateway_app() -> None:
    gateway: Any = object()  # the lifespan (which would start it) does not run here
    with_client = TestClient(create_ws_app(gateway))
    response = with_client.get("/")
    assert response.status_code == 200
    assert b'src="/static/app.js"' in response.content


def test_webclient_is_served_from_clients_web_in_a_checkout() -> None:
    """The client's source is clients/web/, outside the gateway package (the wheel's copy is
    checked by tests/unit/deploy/test_image.py)."""
    assert WEBCLIENT_DIR == REPO_ROOT / "clients" / "web"
    assert {"app.js", "style.css"} <= set(static_files())


def test_webclient_refuses_to_start_without_its_files(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"no index\.html"):
        mount_web_client(FastAPI(), tmp_path)


def test_webclient_loads_nothing_from_elsewhere() -> None:
    """Offline users: no CDN, no external fonts or scripts in any file."""
    for name in ("index.html", *static_files()):
        text = (WEBCLIENT_DIR / name).read_text()
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
        assert "@import" not in text, name


def test_webclient_never_writes_html_from_strings() -> None:
    """XSS: server and user text reaches the page through textContent only."""
    for name in static_files():
        source = (WEBCLIENT_DIR / name).read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{sink} in {name}"


def test_webclient_serves_its_modules_as_javascript(client: TestClient) -> None:
    """Browsers refuse a module script without a JavaScript MIME type."""
    for name in ("app.js", "protocol.js", "room.js", "games/bigger_dice.js"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith("text/javascript"), name
        assert response.content == (WEBCLIENT_DIR / name).read_bytes()


def _protocol_names(kind: str) -> set[str]:
    """The keys of one frozen object of the generated clients/web/protocol.js."""
    text = (WEBCLIENT_DIR / "protocol.js").read_text()
    body = re.search(rf"export const {kind} = Object.freeze\(\{{(.*?)\}}\);", text, re.S)
    assert body, kind
    return set(re.findall(r"^  ([A-Z0-9_]+):", body.group(1), re.M))


def test_webclient_uses_only_wire_constants_that_exist() -> None:
    """A tag, error or close code the protocol dropped or renamed fails here, not in a
    browser as an `undefined` that matches nothing."""
    for name in static_files():
        if name == "protocol.js":
            continue
        source = (WEBCLIENT_DIR / name).read_text()
        for kind in ("Type", "ErrorCode", "CloseCode"):
            used = set(re.findall(rf"\b{kind}\.([A-Z0-9_]+)", source))
            unknown = used - _protocol_names(kind)
            assert not unknown, f"{name} uses {kind}.{sorted(unknown)}, not in protocol.js"


def test_webclient_has_a_text_for_every_error_code() -> None:
    source = (WEBCLIENT_DIR / "ui.js").read_text()
    texts = set(re.findall(r"\[ErrorCode\.([A-Z0-9_]+)\]:", source))
    assert texts == _protocol_names("ErrorCode")


def test_webclient_has_no_hand_copied_wire_strings() -> None:
    """Type tags come from protocol.js: no module spells a command or event tag itself."""
    for name in static_files():
        if name == "protocol.js":
            continue
        source = (WEBCLIENT_DIR / name).read_text()
        copied = re.findall(
            r"[\"'`](?:system|games|chat|presence)\.(?:command|event)?\.?[a-z_]+[\"'`]", source
        )
        assert not copied, f"{name}: {copied}"


def test_webclient_answers_head(client: TestClient) -> None:
    for path in ("/", "/static/app.js"):
        response = client.head(path)
        assert response.status_code == 200, path
        assert response.headers["etag"]
        assert response.content == b""
