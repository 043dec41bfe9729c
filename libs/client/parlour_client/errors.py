"""What the client raises. Timeouts are the builtin `TimeoutError`."""

from __future__ import annotations

from typing import Any


class ParlourClientError(Exception):
    """Base of the client's own errors."""


class AuthenticationFailed(ParlourClientError):
    """The gateway answered `system.authenticate` with `system.error` (or closed)."""

    def __init__(self, frame: dict[str, Any] | None, detail: str = "") -> None:
        self.frame = frame
        code = frame.get("code") if frame else None
        super().__init__(f"authentication failed: {code or detail}")


class CommandRejected(ParlourClientError):
    """The gateway answered a command with `system.error` instead of `system.ack`."""

    def __init__(self, frame: dict[str, Any]) -> None:
        self.frame = frame
        self.code: str = str(frame.get("code"))
        super().__init__(f"{self.code}: {frame.get('message')}")


class ClientClosed(ParlourClientError):
    """The socket closed while a caller was waiting; `code`/`reason` are the close frame's."""

    def __init__(self, code: int | None, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"connection closed ({code}) {reason}".rstrip())
