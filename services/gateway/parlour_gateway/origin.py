"""The Origin allow-list (OWASP: check Origin on the handshake against a list)."""

from __future__ import annotations


def origin_allowed(origin: str | None, allowed: frozenset[str]) -> bool:
    """No Origin header (non-browser clients) is allowed; an empty allow-list allows any;
    otherwise the scheme://host[:port] must be listed exactly (case-insensitive)."""
    if origin is None or not allowed:
        return True
    return origin.strip().rstrip("/").lower() in allowed
