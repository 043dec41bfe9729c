"""Parlour's wire contract: WebSocket messages, Kafka envelopes, error codes, Redis keys.

The current version is :mod:`parlour_protocol.v1`. Inside a version only additive changes are
allowed; a breaking change is a new version module served side by side.
"""

from __future__ import annotations

from parlour_protocol import v1

__all__ = ["v1"]
