"""Where the generator reads (the golden fixtures) and writes (docs/), and how it writes JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parlour_protocol.v1 import CommandEnvelope, EventEnvelope

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "unit" / "protocol" / "golden"
FIELDS_SNAPSHOT = GOLDEN / "_fields.json"
DOCS_MD = Path("docs/protocol.md")
DOCS_DIR = Path("docs/protocol")
WEB_PROTOCOL_JS = Path("clients/web/protocol.js")
ENVELOPE_FIXTURES = {
    CommandEnvelope: "_envelope.command.json",
    EventEnvelope: "_envelope.event.json",
}


def golden(tag: str) -> dict[str, Any]:
    """The golden fixture of the message `tag`."""
    data: dict[str, Any] = json.loads((GOLDEN / f"{tag}.json").read_text())
    return data


def envelope_example(envelope: type[CommandEnvelope] | type[EventEnvelope]) -> Any:
    """The golden fixture of a Kafka envelope."""
    return json.loads((GOLDEN / ENVELOPE_FIXTURES[envelope]).read_text())


def dump(data: Any) -> str:
    """A generated JSON file's text."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
