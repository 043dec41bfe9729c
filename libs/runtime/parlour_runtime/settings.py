"""Building a service's settings from the environment: `ServiceSettings` (the base every
service's ``Settings`` class ends with), `load` and the one `SettingsError`.

Every setting is read from the environment variable of its field's name in upper case. A
setting renamed since a release keeps its old variable working as a deprecated alias: same
unit, through the field's ``validation_alias=AliasChoices(NEW, OLD)``; a new unit (the
``_ms`` settings that became ``_seconds``), through a field of the old name made with
`deprecated_millis`, converted before validation. `env_names` and `deprecated_env_names` say
which variables a field reads, for the error messages and the generated settings tables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

import structlog
from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPLACED_BY = "parlour_replaced_by"  # json_schema_extra key of a deprecated milliseconds field


class SettingsError(Exception):
    """The environment holds an unusable setting; the message names the variable(s)."""


class ServiceSettings(BaseSettings):
    """The base of a service's ``Settings``, after the mixins:
    ``class GatewaySettings(KafkaSettings, RedisSettings, LoggingSettings, ServiceSettings)``.

    Variables are matched case-insensitively, unknown ones are ignored (the services share
    one environment in development), a built object never changes, and tests may build one
    by field name (``GatewaySettings(ws_port=0)``) even where a field has aliases."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, validate_by_name=True
    )

    @model_validator(mode="before")
    @classmethod
    def _deprecated_millis_to_seconds(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            target = _replaced_by(field)
            if target is None or data.get(name) is None or target in data:
                continue
            try:
                seconds = float(str(data[name]).strip()) / 1000
            except ValueError:
                continue  # the old field's own type check names its variable
            data = {**data, target: seconds}
        return data


def renamed(new: str, *old: str) -> AliasChoices:
    """A ``validation_alias`` reading variable `new`, else the deprecated `old` ones (same
    unit): ``Field(validation_alias=renamed("ws_close_timeout_seconds", "ws_close_timeout_secs"))``.
    """
    return AliasChoices(new.upper(), *(name.upper() for name in old))


def deprecated_millis(replaced_by: str) -> Any:
    """A field keeping an old ``*_MS`` variable working: its value, in milliseconds, becomes
    the ``*_seconds`` field `replaced_by` unless that field's own variable is set."""
    return Field(
        default=None,
        exclude=True,
        repr=False,
        deprecated=f"use {replaced_by.upper()} (seconds)",
        description=f"deprecated: {replaced_by.upper()} in milliseconds",
        json_schema_extra={_REPLACED_BY: replaced_by},
    )


def _replaced_by(field: FieldInfo) -> str | None:
    extra = field.json_schema_extra
    if isinstance(extra, dict):
        target = extra.get(_REPLACED_BY)
        if isinstance(target, str):
            return target
    return None


def env_names(name: str, field: FieldInfo) -> tuple[str, ...]:
    """The environment variables field `name` reads: its own first, then deprecated ones."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice).upper() for choice in alias.choices if isinstance(choice, str))
    if isinstance(alias, str):
        return (alias.upper(),)
    return (name.upper(),)


def is_deprecated_field(field: FieldInfo) -> bool:
    """True for a field that exists only to read an old variable (`deprecated_millis`)."""
    return _replaced_by(field) is not None


def deprecated_env_names(settings_cls: type[BaseSettings]) -> dict[str, tuple[str, ...]]:
    """For each field with deprecated variables: field name -> those variables."""
    found: dict[str, tuple[str, ...]] = {}
    for name, field in settings_cls.model_fields.items():
        old = env_names(name, field)[1:]
        if old:
            found[name] = found.get(name, ()) + old
        target = _replaced_by(field)
        if target is not None:
            found[target] = (*found.get(target, ()), name.upper())
    return found


def deprecated_in_use(
    settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """(old variable, its replacement) for each deprecated variable set in `environ`: what a
    service warns about at start-up."""
    present = {key.upper() for key in (os.environ if environ is None else environ)}
    used = []
    for name, olds in deprecated_env_names(settings_cls).items():
        new = env_names(name, settings_cls.model_fields[name])[0]
        used += [(old, new) for old in olds if old in present]
    return sorted(used)


def log_deprecated_in_use(settings_cls: type[BaseSettings]) -> None:
    """One ``deprecated_setting`` warning per deprecated variable set: call it once logging
    is configured, so an operator learns the new names before the old ones go."""
    log = structlog.get_logger(logger_name=__name__)
    for old, new in deprecated_in_use(settings_cls):
        log.warning("deprecated_setting", variable=old, use_instead=new)


_Settings = TypeVar("_Settings", bound=BaseSettings)


def load(settings_cls: type[_Settings]) -> _Settings:
    """Build `settings_cls` from the environment. A validation failure becomes one
    `SettingsError` naming each environment variable at fault (never its value)."""
    try:
        return settings_cls()
    except ValidationError as exc:
        problems = "; ".join(_problems(settings_cls, exc))
        raise SettingsError(f"invalid settings ({settings_cls.__name__}): {problems}") from None


def _problems(settings_cls: type[BaseSettings], exc: ValidationError) -> list[str]:
    fields = settings_cls.model_fields
    by_variable = {
        variable.lower(): name
        for name, field in fields.items()
        for variable in env_names(name, field)
    }
    deprecated = deprecated_env_names(settings_cls)
    present = {key.upper() for key in os.environ}
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:
            problems.append(message)  # a check across settings names its variables itself
            continue
        head = str(error["loc"][0])
        name = by_variable.get(head.lower(), head)
        if name not in fields:
            problems.append(f"{head.upper()}: {message}")
            continue
        variable = env_names(name, fields[name])[0]
        olds = [old for old in deprecated.get(name, ()) if old in present]
        if variable not in present and olds:
            variable += f" (set as the deprecated {', '.join(olds)})"
        problems.append(f"{variable}: {message}")
    return list(dict.fromkeys(problems))
