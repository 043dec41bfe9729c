"""The JSON Schema of each message and envelope (docs/protocol/schemas/)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from parlour_protocol.v1 import SERVER_EVENTS

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def mode(model: type[BaseModel]) -> str:
    # commands: what a decoder accepts; events: what the server sends (incl. computed fields)
    return "serialization" if model in SERVER_EVENTS else "validation"


def message_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A message's schema as published: with the dialect it is written in."""
    schema = model.model_json_schema(mode=mode(model))  # type: ignore[arg-type]
    return {"$schema": DIALECT, **schema}


def envelope_schema(envelope: type[BaseModel]) -> dict[str, Any]:
    return {"$schema": DIALECT, **envelope.model_json_schema()}
