"""How a deployment file runs one of Parlour's services: its command and its environment.

Both the compose file (tests/support/deploy.py) and the rendered Kubernetes manifests
(tests/support/k8s.py) are read into this shape, so one integration test can start the
services natively from either and play a game through them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceSpec:
    """`command` is the argv (console script first, e.g. ["parlour-gateway"]); `env` the
    variables the deployment sets, with Kafka/Redis addresses as the deployment names them."""

    name: str
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
