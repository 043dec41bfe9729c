"""Generate the README's settings tables from the settings classes, so a setting cannot be
added, renamed or given a new default without its row following.

    .venv/bin/python scripts/gen_settings_docs.py           # print the tables
    .venv/bin/python scripts/gen_settings_docs.py --write   # rewrite them in README.md
    .venv/bin/python scripts/gen_settings_docs.py --check   # exit 1 when README.md is stale

Each table sits in README.md between ``<!-- settings:NAME -->`` and ``<!-- /settings:NAME -->``
(NAME: shared, gateway, engine). A row is one environment variable: its field's variable,
default and ``description``, and the deprecated names it still reads. Every field needs a
description: generation fails without one. tests/unit/runtime/test_settings_docs.py fails
when README.md is stale.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from parlour_engine.settings import EngineSettings
from parlour_gateway.settings import GatewaySettings
from parlour_runtime import (
    EventLoopSettings,
    KafkaAddressSettings,
    KafkaSettings,
    LoggingSettings,
    RedisSettings,
)
from parlour_runtime.settings import deprecated_env_names, env_names, is_deprecated_field

README = Path(__file__).resolve().parent.parent / "README.md"
SERVICES: dict[str, type[BaseSettings]] = {"gateway": GatewaySettings, "engine": EngineSettings}
SHARED: tuple[type[BaseModel], ...] = (
    KafkaAddressSettings,
    KafkaSettings,
    RedisSettings,
    LoggingSettings,
    EventLoopSettings,
)
_MILLIS_NOTE = "in milliseconds"


class DocsError(Exception):
    """A settings class cannot be documented (a field without a description)."""


def _shared_fields() -> list[str]:
    names: list[str] = []
    for mixin in SHARED:
        names += [name for name in mixin.model_fields if name not in names]
    return names


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "generated"
    value = field.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _old_names(settings_cls: type[BaseSettings], name: str) -> list[str]:
    fields = settings_cls.model_fields
    olds = []
    for old in deprecated_env_names(settings_cls).get(name, ()):
        field = fields.get(old.lower())
        unit = f" ({_MILLIS_NOTE})" if field is not None and is_deprecated_field(field) else ""
        olds.append(f"`{old}`{unit}")
    return olds


def _row(settings_cls: type[BaseSettings], name: str, deprecated: Iterable[str] = ()) -> str:
    field = settings_cls.model_fields[name]
    if not field.description:
        raise DocsError(f"{settings_cls.__name__}.{name} has no description")
    meaning = field.description.replace("|", "\\|")
    olds = list(deprecated) or _old_names(settings_cls, name)
    if olds:
        meaning += f"; deprecated name, still read: {', '.join(olds)}"
    return f"| `{env_names(name, field)[0]}` | {_default(field)} | {meaning} |"


def _table(rows: list[str]) -> str:
    return "\n".join(["| variable | default | meaning |", "| --- | --- | --- |", *rows])


def tables() -> dict[str, str]:
    """Table text by section name."""
    shared = _shared_fields()
    some_service = next(iter(SERVICES.values()))
    shared_rows = []
    for name in shared:
        olds: list[str] = []
        for service, settings_cls in SERVICES.items():
            olds += [f"{old} ({service})" for old in _old_names(settings_cls, name)]
        shared_rows.append(_row(some_service, name, olds))
    result = {"shared": _table(shared_rows)}
    for service, settings_cls in SERVICES.items():
        rows = [
            _row(settings_cls, name)
            for name, field in settings_cls.model_fields.items()
            if name not in shared and not is_deprecated_field(field)
        ]
        result[service] = _table(rows)
    return result


def render(text: str) -> str:
    """`text` (README.md) with every marked table regenerated."""
    for section, table in tables().items():
        pattern = re.compile(
            rf"(<!-- settings:{section} -->\n).*?(<!-- /settings:{section} -->)", re.DOTALL
        )
        found = pattern.search(text)
        if found is None:
            raise DocsError(f"README.md has no <!-- settings:{section} --> markers")
        text = text[: found.end(1)] + table + "\n" + text[found.start(2) :]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the tables in README.md")
    mode.add_argument("--check", action="store_true", help="exit 1 when README.md is stale")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        for section, table in tables().items():
            print(f"<!-- settings:{section} -->\n{table}\n")
        return 0
    current = README.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("README.md settings tables are stale: run scripts/gen_settings_docs.py --write")
            return 1
        return 0
    if wanted != current:
        README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
