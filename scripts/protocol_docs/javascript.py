"""`clients/web/protocol.js`: the wire constants of the browser client, as an ES module.

The client imports its type tags, field limits and patterns, error codes (with their
meanings) and close codes from this file instead of copying them, so it cannot drift from
`parlour_protocol.v1`: `--check` fails when the committed file differs from what the models
make now.
"""

from __future__ import annotations

import json
import re
from enum import Enum
from typing import Any

from parlour_protocol.v1 import (
    CLIENT_COMMANDS,
    ERROR_MEANINGS,
    SERVER_EVENTS,
    CloseCode,
    ErrorCode,
    type_tag,
)
from parlour_protocol.v1 import limits as _limits

_HEADER = """\
// Generated from parlour_protocol.v1 by scripts/protocol_docs (javascript.py): do not edit.
// Rewrite with `.venv/bin/python scripts/protocol_docs --write`; `--check` (run by the unit
// tests) fails when this file is stale.
"""

# Python's (and pydantic-core's) `\\w` on str patterns is Unicode-aware; JavaScript's is ASCII
# unless spelled as Unicode properties (with the `u` flag)
_WORD_CLASS_BODY = r"\p{L}\p{N}\p{M}_"


def js_pattern(pattern: str) -> str:
    """A Python regular expression of the protocol as the source of a JavaScript `u` RegExp.

    The protocol's patterns use anchors, character classes, `\\w`, `\\s`, `\\xNN` and
    quantifiers, which mean the same in both once `\\w` is spelled out; anything else is
    refused here so a new pattern gets a translation, not a silent mismatch."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escape = pattern[i : i + 2]
            if escape == r"\w":
                out.append(_WORD_CLASS_BODY if in_class else f"[{_WORD_CLASS_BODY}]")
            elif escape in (r"\s", r"\d", r"\x", r"\.", r"\-"):
                out.append(escape)
            else:
                raise ValueError(f"no JavaScript translation for {escape!r} in {pattern!r}")
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        elif char == "(" and not in_class and pattern[i + 1 : i + 2] == "?":
            raise ValueError(f"no JavaScript translation for a (?...) group in {pattern!r}")
        out.append(char)
        i += 1
    source = "".join(out)
    re.compile(pattern)  # the input is a valid pattern at all
    return source


def _const_name(tag: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", tag.upper())


def _js(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _frozen_object(name: str, doc: str, entries: list[tuple[str, Any]]) -> list[str]:
    lines = [f"// {doc}", f"export const {name} = Object.freeze({{"]
    lines += [
        f"  {key if key.isidentifier() else _js(key)}: {_js(value)}," for key, value in entries
    ]
    lines.append("});")
    return lines


def _type_tags() -> list[tuple[str, str]]:
    tags = sorted({type_tag(m) for m in CLIENT_COMMANDS} | {type_tag(m) for m in SERVER_EVENTS})
    entries = [(_const_name(tag), tag) for tag in tags]
    names = [name for name, _ in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"type tags that map to the same JavaScript name: {duplicates}")
    return entries


def _limit_constants() -> tuple[list[tuple[str, int | str]], list[tuple[str, str]]]:
    """The public constants of `parlour_protocol.v1.limits`: numbers and strings, and the
    `*_PATTERN` ones as RegExp sources."""
    values: list[tuple[str, int | str]] = []
    patterns: list[tuple[str, str]] = []
    for name, value in sorted(vars(_limits).items()):
        if name.startswith("_") or not name.isupper():
            continue
        if name.endswith("_PATTERN") and isinstance(value, str):
            patterns.append((name.removesuffix("_PATTERN") + "_RE", js_pattern(value)))
        elif isinstance(value, (int, str)) and not isinstance(value, (bool, Enum)):
            values.append((name, value))
    return values, patterns


def render_protocol_js() -> str:
    """The text of `clients/web/protocol.js`."""
    values, patterns = _limit_constants()
    lines = [_HEADER.rstrip("\n"), ""]
    lines += _frozen_object(
        "Type",
        "every type tag a browser sends (client commands) or receives (server events)",
        _type_tags(),
    )
    lines.append("")
    lines.append("// the protocol version and the schema's limits (parlour_protocol.v1.limits)")
    lines += [f"export const {name} = {_js(value)};" for name, value in values]
    lines.append("")
    lines.append("// field patterns of the schema, `\\w` spelled as Unicode properties")
    lines += [f'export const {name} = new RegExp({_js(source)}, "u");' for name, source in patterns]
    lines.append("")
    lines += _frozen_object(
        "ErrorCode", "codes of system.error", [(code.name, code.value) for code in ErrorCode]
    )
    lines.append("")
    lines += _frozen_object(
        "ERROR_MEANINGS",
        "what each error code means (docs/protocol.md), by code",
        [(code.value, ERROR_MEANINGS[code]) for code in ErrorCode],
    )
    lines.append("")
    lines += _frozen_object(
        "CloseCode",
        "WebSocket close codes of the gateway",
        [(code.name, code.value) for code in CloseCode],
    )
    return "\n".join(lines) + "\n"
