"""WebSocket close codes the gateway uses, and what a client should do on each."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    """Closed on purpose (the client left, or the user logged out)."""
    GOING_AWAY = 1001
    """The peer is leaving (browser tab closed, page navigated away)."""
    POLICY_VIOLATION = 1008
    """Origin not allowed."""
    MESSAGE_TOO_BIG = 1009
    """A frame exceeded the transport limit; oversized JSON frames below it only get
    `system.error` `message_too_large`."""
    INTERNAL_ERROR = 1011
    """An unexpected gateway fault on this socket: reconnect and resume."""
    SERVICE_RESTART = 1012
    """The gateway is shutting down: reconnect (to another gateway) and resume."""
    TRY_AGAIN_LATER = 1013
    """The gateway is at its cap of authenticated sockets, or of sockets awaiting
    authentication: reconnect later or elsewhere."""
    AUTH_TIMEOUT = 4001
    """No successful system.authenticate within AUTH_TIMEOUT_SECONDS."""
    AUTH_FAILED = 4003
    """Too many failed authentication attempts on this socket."""
    TOKEN_EXPIRED = 4004
    """The token expired and no fresh one came within the grace."""
    TOO_MANY_CONNECTIONS = 4008
    """The user already has the maximum number of sockets."""
    RATE_LIMITED = 4029
    """The socket kept sending past its rate limit."""
    HEARTBEAT_TIMEOUT = 4030
    """Nothing received for WS_HEARTBEAT_TIMEOUT_SECONDS."""
    SLOW_CONSUMER = 4031
    """The client stopped reading and its send queue filled (by frames or by bytes)."""
