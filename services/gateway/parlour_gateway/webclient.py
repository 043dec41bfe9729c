"""The browser client: `/` serves its `index.html`, `/static/<path>` its modules and style.

The client's source lives outside this package, in `clients/web/` at the repository root, so
a new game's renderer never touches the gateway. The wheel carries a copy of that folder as
`parlour_gateway/webclient/` (pyproject.toml's hatch `force-include`); a checkout (editable
install, tests) has no such copy and serves `clients/web/` itself. `WEBCLIENT_DIR` is whichever
of the two exists.

The files are few and small, so they are read once when the app is built and served from
memory with a content ETag: a browser revalidates (`no-cache`) and gets a 304 while the file
is unchanged. Only the files found then are served, so no request path reaches the disk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

_PACKAGED = Path(__file__).resolve().parent / "webclient"
# services/gateway/parlour_gateway/webclient.py -> the repository root
_CHECKOUT = Path(__file__).resolve().parents[3] / "clients" / "web"
WEBCLIENT_DIR = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT

# the page talks only to its own origin: scripts (module scripts and their imports are
# same-origin, so 'self' covers them), styles and the WebSocket (ws:/wss: because 'self' does
# not cover the WebSocket schemes in every browser)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

# browsers refuse a module script served without a JavaScript MIME type
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


def static_files(directory: Path = WEBCLIENT_DIR) -> list[str]:
    """The client's files served under `/static/`: every .js and .css below `directory`, as
    POSIX paths relative to it (`app.js`, `games/bigger_dice.js`)."""
    return sorted(
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and path.suffix in (".js", ".css")
    )


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _load(directory: Path, name: str) -> _Asset:
    body = (directory / name).read_bytes()
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


def mount_web_client(app: FastAPI, directory: Path = WEBCLIENT_DIR) -> None:
    """Serve the browser client in `directory` on `app`: `/` and `/static/<path>`."""
    if not (directory / "index.html").is_file():
        # at start-up, not at the first page load
        raise RuntimeError(f"the browser client is missing: no index.html in {directory}")
    index = _load(directory, "index.html")
    assets = {name: _load(directory, name) for name in static_files(directory)}

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def web_index(request: Request) -> Response:
        return _serve(index, request)

    @app.api_route("/static/{name:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def web_static(name: str, request: Request) -> Response:
        asset = assets.get(name)
        if asset is None:
            return Response(
                "not found", status_code=404, media_type="text/plain", headers=_security_headers()
            )
        return _serve(asset, request)
