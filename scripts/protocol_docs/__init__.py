"""Generate the protocol contract from `parlour_protocol.v1`.

    .venv/bin/python scripts/protocol_docs --write   # rewrite the generated files
    .venv/bin/python scripts/protocol_docs --check   # exit 1 when they are stale

Writes a JSON Schema per WebSocket message and per Kafka envelope (docs/protocol/schemas/), an
AsyncAPI 3.0 document for the Kafka topics (docs/protocol/asyncapi.json), the human-readable
docs/protocol.md and the browser client's wire constants (clients/web/protocol.js). Examples
come from the golden fixtures in tests/unit/protocol/golden/. `--write` also records new
models and fields in tests/unit/protocol/golden/_fields.json; it never drops an entry, so a
removed or renamed field keeps failing the field-snapshot test.

What a message cannot say in its fields (who receives an event, what a command causes) it says
in its `doc_audience` / `doc_answer` class attribute, next to its fields.

Modules: `sources` (where the inputs and outputs are), `json_schema`, `markdown` (with
`fields` for the field tables and `history` for the differences from the original system),
`asyncapi`, `javascript` (protocol.js), `snapshot` (the field snapshot that guards against
breaking changes) and `files` (every generated file, stale or not).

Output is deterministic: same models and fixtures, same bytes.
"""
