"""The field snapshot (tests/unit/protocol/golden/_fields.json): every protocol model's fields,
recorded so that a removed, renamed or newly required field fails the tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from parlour_protocol.v1.base import WireModel


def _models() -> Iterator[type[WireModel]]:
    stack: list[type[WireModel]] = [WireModel]
    seen: set[type[WireModel]] = set()
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen and sub.__module__.startswith("parlour_protocol.v1"):
                seen.add(sub)
                stack.append(sub)
    yield from sorted(seen, key=_model_key)


def _model_key(model: type[BaseModel]) -> str:
    return f"{model.__module__.removeprefix('parlour_protocol.v1.')}:{model.__qualname__}"


def fields_snapshot() -> dict[str, dict[str, Any]]:
    """Every protocol model's `type` tag (messages) and fields: required, optional or computed."""
    snapshot: dict[str, dict[str, Any]] = {}
    for model in _models():
        fields: dict[str, str] = {
            name: "required" if info.is_required() else "optional"
            for name, info in model.model_fields.items()
        }
        fields.update({name: "computed" for name in model.model_computed_fields})
        type_field = model.model_fields.get("type")
        tag = type_field.default if type_field is not None else None
        snapshot[_model_key(model)] = {
            "type": tag if isinstance(tag, str) else None,
            "fields": fields,
        }
    return snapshot


def breaking_changes(
    recorded: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]
) -> list[str]:
    """What `current` breaks against `recorded`: a model or field removed or renamed, a
    message `type` changed, an optional field made required."""
    problems: list[str] = []
    for key, entry in recorded.items():
        if key not in current:
            problems.append(f"model {key} was removed or renamed")
            continue
        if entry["type"] != current[key]["type"]:
            problems.append(f"{key}: type {entry['type']!r} became {current[key]['type']!r}")
        for name, kind in entry["fields"].items():
            now = current[key]["fields"].get(name)
            if now is None:
                problems.append(f"{key}.{name} was removed or renamed")
            elif kind != "required" and now == "required":
                problems.append(f"{key}.{name} was {kind} and is now required")
    return problems


def merged_fields_snapshot(recorded: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The recorded snapshot plus what is new; nothing recorded is ever dropped or loosened."""
    merged = {key: {"type": v["type"], "fields": dict(v["fields"])} for key, v in recorded.items()}
    for key, entry in fields_snapshot().items():
        target = merged.setdefault(key, {"type": entry["type"], "fields": {}})
        for name, kind in entry["fields"].items():
            target["fields"].setdefault(name, kind)
    return dict(sorted(merged.items()))
