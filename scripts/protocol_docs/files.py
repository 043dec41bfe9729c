"""Every generated file and its content; `--write` writes them, `--check` names stale ones."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import protocol_docs
from parlour_protocol.v1 import (
    CLIENT_COMMANDS,
    INTERNAL_COMMANDS,
    SERVER_EVENTS,
    CommandEnvelope,
    EventEnvelope,
    type_tag,
)
from protocol_docs.asyncapi import asyncapi
from protocol_docs.javascript import render_protocol_js
from protocol_docs.json_schema import envelope_schema, message_schema
from protocol_docs.markdown import render_markdown
from protocol_docs.snapshot import merged_fields_snapshot
from protocol_docs.sources import (
    DOCS_DIR,
    DOCS_MD,
    FIELDS_SNAPSHOT,
    ROOT,
    WEB_PROTOCOL_JS,
    dump,
)


def render() -> dict[Path, str]:
    """Every generated file (path relative to the repository root) and its content."""
    files: dict[Path, str] = {DOCS_MD: render_markdown()}
    for folder, models in (
        ("client", CLIENT_COMMANDS),
        ("internal", INTERNAL_COMMANDS),
        ("server", SERVER_EVENTS),
    ):
        for model in models:
            path = DOCS_DIR / "schemas" / folder / f"{type_tag(model)}.json"
            files[path] = dump(message_schema(model))
    for envelope in (CommandEnvelope, EventEnvelope):
        path = DOCS_DIR / "schemas" / "kafka" / f"{envelope.__name__}.json"
        files[path] = dump(envelope_schema(envelope))
    files[DOCS_DIR / "asyncapi.json"] = dump(asyncapi())
    files[WEB_PROTOCOL_JS] = render_protocol_js()
    return files


def stale(files: dict[Path, str]) -> list[str]:
    """The generated files whose committed copy differs from `files`, or is no longer made."""
    problems = []
    for path, content in files.items():
        full = ROOT / path
        if not full.exists() or full.read_text() != content:
            problems.append(str(path))
    schema_dir = ROOT / DOCS_DIR
    if schema_dir.exists():
        for full in sorted(schema_dir.rglob("*.json")):
            if full.relative_to(ROOT) not in files:
                problems.append(f"{full.relative_to(ROOT)} (no longer generated)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(protocol_docs.__doc__ or "").split("\n", 1)[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite the generated files")
    action.add_argument("--check", action="store_true", help="fail when they are stale")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        stale_paths = stale(files)
        for name in stale_paths:
            print(f"stale: {name}", file=sys.stderr)
        if stale_paths:
            print("run: .venv/bin/python scripts/protocol_docs --write", file=sys.stderr)
        return 1 if stale_paths else 0
    schema_dir = ROOT / DOCS_DIR
    if schema_dir.exists():
        for full in schema_dir.rglob("*.json"):
            if full.relative_to(ROOT) not in files:
                full.unlink()
    for path, content in files.items():
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(content)
    recorded = json.loads(FIELDS_SNAPSHOT.read_text()) if FIELDS_SNAPSHOT.exists() else {}
    FIELDS_SNAPSHOT.write_text(dump(merged_fields_snapshot(recorded)))
    print(f"wrote {len(files)} files and {FIELDS_SNAPSHOT.relative_to(ROOT)}")
    return 0
