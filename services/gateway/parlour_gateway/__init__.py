"""Parlour WebSocket gateway: sockets, auth, presence, limits; no game rules."""
