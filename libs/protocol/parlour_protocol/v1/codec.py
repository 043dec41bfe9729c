"""Decoding and encoding. Adapters are built once at import; decoding goes straight from bytes.

Every decoder raises `ProtocolError` and nothing else for bad input.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from parlour_protocol.v1 import limits
from parlour_protocol.v1.base import ClientCommand, ServerEvent
from parlour_protocol.v1.envelope import CommandEnvelope, EventEnvelope
from parlour_protocol.v1.errors import DecodeFailure, FieldProblem, ProtocolError
from parlour_protocol.v1.messages import ClientMessage, ServerMessage

_client_adapter: TypeAdapter[ClientCommand] = TypeAdapter(ClientMessage)
_server_adapter: TypeAdapter[ServerEvent] = TypeAdapter(ServerMessage)
_command_envelope_adapter = TypeAdapter(CommandEnvelope)
_event_envelope_adapter = TypeAdapter(EventEnvelope)

_JSON_ERRORS = frozenset({"json_invalid", "json_type", "string_unicode"})
"""Error kinds that mean the frame itself is not JSON (`string_unicode`: a `str` frame with lone
surrogates, which no UTF-8 JSON text can carry)."""
_TAG_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})
_MAX_REPORTED_FIELDS = 20
"""A frame can fail on thousands of list items; the error names the first few."""
_MAX_ECHOED_TYPE = 64
"""An unknown `type` is echoed in the error message, cut to this many characters."""


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _to_protocol_error(exc: ValidationError, *, tag_is_first: bool) -> ProtocolError:
    errors = exc.errors(include_url=False, include_input=False)
    kinds = {error["type"] for error in errors}
    if kinds & _JSON_ERRORS:
        error = next(e for e in errors if e["type"] in _JSON_ERRORS)
        detail = str((error.get("ctx") or {}).get("error") or error["msg"])
        return ProtocolError(DecodeFailure.INVALID_JSON, f"the frame is not valid JSON: {detail}")
    if tag_is_first and kinds & _TAG_ERRORS:
        error = next(e for e in errors if e["type"] in _TAG_ERRORS)
        ctx: dict[str, Any] = dict(error.get("ctx") or {})
        tag = ctx.get("tag")
        if error["type"] == "union_tag_not_found":
            return ProtocolError(DecodeFailure.UNKNOWN_TYPE, "the message has no `type` field")
        shown = str(tag)[:_MAX_ECHOED_TYPE]
        return ProtocolError(
            DecodeFailure.UNKNOWN_TYPE, f"unknown message type {shown!r}", message_type=shown
        )
    if (
        len(errors) == 1
        and errors[0]["type"] in {"dict_type", "model_type"}
        and not errors[0]["loc"]
    ):
        return ProtocolError(DecodeFailure.INVALID_JSON, "the frame is not a JSON object")
    # locations of a discriminated union start with the tag value: drop it from the path
    # (for envelopes, the tag follows `payload`)
    message_type = None
    problems: list[FieldProblem] = []
    for error in errors[:_MAX_REPORTED_FIELDS]:
        loc = tuple(error["loc"])
        if tag_is_first and loc:
            message_type = str(loc[0])
            loc = loc[1:]
        elif len(loc) >= 2 and loc[0] == "payload" and error["type"] not in _TAG_ERRORS:
            loc = loc[:1] + loc[2:]
        message = error["msg"]
        if error["type"] == "union_tag_invalid":
            tag = str((error.get("ctx") or {}).get("tag"))[:_MAX_ECHOED_TYPE]
            message = f"unknown message type {tag!r}"
        problems.append(FieldProblem(path=_path(loc) or "(message)", message=message))
    paths = ", ".join(problem.path for problem in problems)
    if len(errors) > _MAX_REPORTED_FIELDS:
        paths += f" and {len(errors) - _MAX_REPORTED_FIELDS} more"
    return ProtocolError(
        DecodeFailure.INVALID_FIELDS,
        f"invalid fields: {paths}",
        fields=problems,
        message_type=message_type,
    )


def _request_id_of(data: bytes | str) -> str | None:
    """Best effort: a request_id to echo on the error about this frame."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(raw, dict):
        value = raw.get("request_id")
        if isinstance(value, str) and 0 < len(value) <= limits.REQUEST_ID_MAX_LENGTH:
            try:
                value.encode("utf-8")  # a lone surrogate could not be sent back
            except UnicodeEncodeError:
                return None
            return value
    return None


def decode_client_message(
    data: bytes | str, *, max_bytes: int = limits.MAX_FRAME_BYTES
) -> ClientCommand:
    """Decode and validate one frame a client sent.

    Raises `ProtocolError` (invalid_json, unknown_type, invalid_fields, too_large).
    """
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ProtocolError(
            DecodeFailure.TOO_LARGE, f"the frame has {size} bytes; the limit is {max_bytes}"
        )
    try:
        return _client_adapter.validate_json(data)
    except ValidationError as exc:
        error = _to_protocol_error(exc, tag_is_first=True)
        error.request_id = _request_id_of(data)
        raise error from None
    except (ValueError, RecursionError) as exc:  # e.g. surrogates pydantic cannot read
        raise ProtocolError(DecodeFailure.INVALID_JSON, f"the frame is not JSON: {exc}") from None


def decode_server_message(data: bytes | str) -> ServerEvent:
    """Decode a server→client message (clients and tests)."""
    try:
        return _server_adapter.validate_json(data)
    except ValidationError as exc:
        raise _to_protocol_error(exc, tag_is_first=True) from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(DecodeFailure.INVALID_JSON, f"not JSON: {exc}") from None


def decode_command_envelope(data: bytes | str) -> CommandEnvelope:
    """Decode a command from `games.command.v1`."""
    try:
        return _command_envelope_adapter.validate_json(data)
    except ValidationError as exc:
        raise _to_protocol_error(exc, tag_is_first=False) from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(DecodeFailure.INVALID_JSON, f"not JSON: {exc}") from None


def decode_event_envelope(data: bytes | str) -> EventEnvelope:
    """Decode an event from `games.event.v1`."""
    try:
        return _event_envelope_adapter.validate_json(data)
    except ValidationError as exc:
        raise _to_protocol_error(exc, tag_is_first=False) from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(DecodeFailure.INVALID_JSON, f"not JSON: {exc}") from None


def encode(message: BaseModel) -> bytes:
    """Encode any protocol model (message or envelope) to compact JSON bytes."""
    return message.model_dump_json().encode()
