"""Markdown for the fields of a message or shared shape, read from its JSON Schema."""

from __future__ import annotations

import ast
import inspect
import itertools
import json
from typing import Any

from pydantic import BaseModel

from protocol_docs.json_schema import mode


def attribute_docs(cls: type) -> dict[str, str]:
    """Docstrings written under class attributes (enum members), read from the source."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.targets[0].id] = " ".join(after.value.value.split())
    return docs


def _type_str(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        return " \\| ".join(_type_str(option) for option in prop["anyOf"])
    if "const" in prop:
        return f'`"{prop["const"]}"`'
    if "enum" in prop:
        return " \\| ".join(f"`{value}`" for value in prop["enum"])
    kind = prop.get("type")
    if kind == "array":
        if "prefixItems" in prop:
            return "[" + ", ".join(_type_str(item) for item in prop["prefixItems"]) + "]"
        return f"list[{_type_str(prop.get('items', {}))}]"
    if kind == "integer" and ("minimum" in prop or "maximum" in prop):
        return f"integer {prop.get('minimum', '')}..{prop.get('maximum', '')}"
    if kind == "string" and prop.get("format") == "date-time":
        return "timestamp"
    if kind == "string" and prop.get("format") == "uuid":
        return "uuid"
    return str(kind or "any")


def _constraints(prop: dict[str, Any]) -> str:
    parts: list[str] = []
    options = prop.get("anyOf", [prop])
    for option in options:
        if "minLength" in option or "maxLength" in option:
            parts.append(f"length {option.get('minLength', 0)}..{option.get('maxLength', '')}")
        if "minimum" in option or "maximum" in option:
            parts.append(f"range {option.get('minimum', '')}..{option.get('maximum', '')}")
        if "pattern" in option:
            parts.append(f"pattern `{option['pattern']}`")
        if option.get("type") == "array" and "items" in option:
            parts.extend(_constraints(option["items"]).split("; ") if option["items"] else [])
    return "; ".join(part for part in parts if part).replace("|", "\\|")


def field_rows(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    rows = ["| field | type | required | default | limits | notes |", "|---|---|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        default = "" if "default" not in prop else f"`{json.dumps(prop['default'])}`"
        notes = " ".join(str(prop.get("description", "")).split())
        if prop.get("readOnly"):
            notes = ("sent by the server, ignored on input. " + notes).strip()
        # `type` has a default in Python but is the discriminator: always required on the wire
        is_required = name in required or name == "type"
        rows.append(
            f"| `{name}` | {_type_str(prop)} | {'yes' if is_required else 'no'} | "
            f"{default} | {_constraints(prop)} | {notes} |"
        )
    return rows


def shared_shapes(models: list[type[BaseModel]]) -> list[str]:
    defs: dict[str, dict[str, Any]] = {}
    for model in models:
        defs.update(model.model_json_schema(mode=mode(model)).get("$defs", {}))  # type: ignore[arg-type]
    lines: list[str] = []
    for name in sorted(defs):
        schema = defs[name]
        lines += [f"#### {name}", ""]
        if schema.get("description"):
            lines += [" ".join(schema["description"].split()), ""]
        if "enum" in schema:
            lines += ["One of: " + ", ".join(f"`{value}`" for value in schema["enum"]), ""]
        else:
            lines += [*field_rows(schema), ""]
    return lines
