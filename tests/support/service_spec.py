"""How a deployment file runs one of Parlour's services: its command and its environment.

Both the compose file (tests/support/deploy.py) and the rendered Kubernetes manifests
(tests/support/k8s.py) are read into this shape, so one integration test can start the
services natively from either and play a game through them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic_settings import BaseSettings

from parlour_engine.settings import EngineSettings
from parlour_gateway.settings import GatewaySettings
from parlour_runtime.settings import env_names, is_deprecated_field


@dataclass(frozen=True)
class ServiceSpec:
    """`command` is the argv (console script first, e.g. ["parlour-gateway"]); `env` the
    variables the deployment sets, with Kafka/Redis addresses as the deployment names them."""

    name: str
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def current_variables(settings_cls: type[BaseSettings]) -> set[str]:
    """The variables a settings class reads under their current names (not the deprecated
    aliases, nor the fields that only read an old variable)."""
    return {
        env_names(name, field)[0]
        for name, field in settings_cls.model_fields.items()
        if not is_deprecated_field(field)
    }


def settings_of(spec: ServiceSpec) -> type[GatewaySettings] | type[EngineSettings]:
    """The settings class of the service a spec runs, by its console script."""
    by_script: dict[str, type[GatewaySettings] | type[EngineSettings]] = {
        "parlour-gateway": GatewaySettings,
        "parlour-engine": EngineSettings,
    }
    if spec.command[0] not in by_script:
        raise AssertionError(f"{spec.name}: {spec.command[0]!r} is not a Parlour console script")
    return by_script[spec.command[0]]
