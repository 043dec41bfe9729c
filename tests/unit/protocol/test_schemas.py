"""Every published JSON Schema (docs/protocol/schemas/, and the envelope schemas inside
docs/protocol/asyncapi.json) is a valid draft 2020-12 schema and accepts its golden fixture,
checked with a standard validator (`jsonschema`), not only with the models that made it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.support.golden import GOLDEN_DIR, REPO_ROOT

SCHEMAS = REPO_ROOT / "docs" / "protocol" / "schemas"
ASYNCAPI = REPO_ROOT / "docs" / "protocol" / "asyncapi.json"
ENVELOPE_FIXTURES = {
    "CommandEnvelope": "_envelope.command.json",
    "EventEnvelope": "_envelope.event.json",
}


def _fixture_of(schema_path: Path) -> Path:
    if schema_path.parent.name == "kafka":
        return GOLDEN_DIR / ENVELOPE_FIXTURES[schema_path.stem]
    return GOLDEN_DIR / schema_path.name  # <type>.json


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _with_foreign_type(fixture: dict[str, Any], *, envelope: bool) -> dict[str, Any]:
    # an envelope's own `type` is any string (it repeats its payload's): change the payload's
    if envelope:
        return {**fixture, "payload": _with_foreign_type(fixture["payload"], envelope=False)}
    return {**fixture, "type": "not.a.message"}


SCHEMA_FILES = sorted(SCHEMAS.rglob("*.json"))


def test_every_schema_has_a_golden_fixture() -> None:
    assert len(SCHEMA_FILES) > 50
    missing = [str(p.relative_to(SCHEMAS)) for p in SCHEMA_FILES if not _fixture_of(p).exists()]
    assert not missing


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: str(p.relative_to(SCHEMAS)))
def test_golden_fixture_is_valid_against_its_published_schema(path: Path) -> None:
    schema = _load(path)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator = _validator(schema)
    fixture = _load(_fixture_of(path))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(fixture)]
    assert not errors
    # and the schema is not vacuous: the same message with a foreign `type` is refused
    assert not validator.is_valid(_with_foreign_type(fixture, envelope=path.parent.name == "kafka"))


@pytest.mark.parametrize("envelope", sorted(ENVELOPE_FIXTURES))
def test_asyncapi_envelope_schema_accepts_its_golden_fixture(envelope: str) -> None:
    document = _load(ASYNCAPI)
    uri = "urn:parlour:asyncapi"
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"{uri}#/components/schemas/{envelope}"}
    validator = Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    fixture = _load(GOLDEN_DIR / ENVELOPE_FIXTURES[envelope])
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(fixture)]
    assert not errors
    assert not validator.is_valid(_with_foreign_type(fixture, envelope=True))
