"""The browser client: `/` serves `webclient/index.html`, `/static/<name>` its script and style.

The files are few, small and fixed, so they are read once when the app is built and served
from memory with a content ETag: a browser revalidates (`no-cache`) and gets a 304 while the
file is unchanged. Only the listed names are served, so no request path reaches the disk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

WEBCLIENT_DIR = Path(__file__).resolve().parent / "webclient"

# the page talks only to its own origin: scripts, styles and the WebSocket (ws:/wss: because
# 'self' does not cover the WebSocket schemes in every browser)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
STATIC_FILES = ("app.js", "style.css")


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _load(name: str) -> _Asset:
    body = (WEBCLIENT_DIR / name).read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return _Asset(body=body, media_type=_MEDIA_TYPES[Path(name).suffix], etag=etag)


def _security_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def _serve(asset: _Asset, request: Request) -> Response:
    headers = {
        **_security_headers(),
        # always revalidate: the names carry no content hash, and a stale app.js would speak
        # an old protocol to a new gateway
        "Cache-Control": "no-cache",
        "ETag": asset.etag,
    }
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(content=asset.body, media_type=asset.media_type, headers=headers)


def mount_web_client(app: FastAPI) -> None:
    """Serve the browser client on `app`: `/` and `/static/{app.js,style.css}`."""
    index = _load("index.html")
    assets = {name: _load(name) for name in STATIC_FILES}

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def web_index(request: Request) -> Response:
        return _serve(index, request)

    @app.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    async def web_static(name: str, request: Request) -> Response:
        asset = assets.get(name)
        if asset is None:
            return Response(
                "not found", status_code=404, media_type="text/plain", headers=_security_headers()
            )
        return _serve(asset, request)
