"""Parlour's Kubernetes manifests as a cluster would receive them: `rendered()` runs
`kubectl kustomize` on an overlay (deploy/k8s/overlays/example unless told), and
`deployment_specs()` reads each Deployment's command and environment from that output into a
`ServiceSpec`, the ConfigMaps of ``envFrom`` resolved the way the kubelet resolves them.

Used by tests/unit/deploy/test_k8s.py (the manifests' own checks) and by an integration test
that starts the services natively with what the Deployments give them. Needs `kubectl` (its
built-in kustomize); nothing here talks to a cluster.
"""

from __future__ import annotations

import base64
import functools
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML, through kubernetes-validate

from tests.support.paths import REPO_ROOT
from tests.support.service_spec import ServiceSpec

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
EXAMPLE_OVERLAY = K8S_DIR / "overlays" / "example"

Manifest = dict[str, Any]


class ManifestError(Exception):
    """The manifests cannot be rendered, or a Deployment's environment cannot be resolved
    from them alone (a Secret that is required but not part of the manifests)."""


def kubectl() -> list[str] | None:
    """The command that renders an overlay: `kubectl kustomize` when kubectl is on PATH, else
    the `kustomize build` that `scripts/infra tools` (run by `make test`) puts in .infra/bin."""
    if (binary := shutil.which("kubectl")) is not None:
        return [binary, "kustomize"]
    fallback = REPO_ROOT / ".infra" / "bin" / "kustomize"
    return [str(fallback), "build"] if fallback.exists() else None


@functools.cache
def _kustomize(overlay: Path) -> str:
    # cached as text: each caller parses its own copy and may change it freely
    render = kubectl()
    if render is None:
        raise ManifestError("no kustomize: install kubectl, or run `make test-tools`")
    result = subprocess.run(
        [*render, str(overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise ManifestError(f"kubectl kustomize {overlay} failed:\n{result.stderr}")
    return result.stdout


def rendered(overlay: Path = EXAMPLE_OVERLAY) -> list[Manifest]:
    """Every object `kubectl kustomize <overlay>` renders, in its order."""
    docs = yaml.safe_load_all(_kustomize(overlay.resolve()))
    return [doc for doc in docs if doc]


def find(objects: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    """The objects of `kind` (named `name`, when given)."""
    return [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def component(deployment: Manifest) -> str:
    """A Deployment's `app.kubernetes.io/component` label: "gateway" or "engine"."""
    return str(deployment["metadata"]["labels"]["app.kubernetes.io/component"])


def only_container(deployment: Manifest) -> Manifest:
    containers: list[Manifest] = deployment["spec"]["template"]["spec"]["containers"]
    if len(containers) != 1:
        raise ManifestError(f"{deployment['metadata']['name']}: expected one container")
    return containers[0]


def _data(obj: Manifest) -> dict[str, str]:
    """A ConfigMap's or Secret's values as text."""
    values = {key: str(value) for key, value in (obj.get("data") or {}).items()}
    if obj["kind"] == "Secret":
        values = {key: base64.b64decode(value).decode() for key, value in values.items()}
        values.update({key: str(value) for key, value in (obj.get("stringData") or {}).items()})
    return values


Secrets = Mapping[str, Mapping[str, str]]
"""Secrets the operator creates in the cluster (never part of the manifests), for a run
without one: Secret name -> key -> value."""


def _source(
    objects: list[Manifest], kind: str, ref: Mapping[str, Any], container: str, secrets: Secrets
) -> dict[str, str] | None:
    """The data of the ConfigMap/Secret `ref` names; None when it is optional and absent."""
    found = find(objects, kind, ref["name"])
    if found:
        return _data(found[0])
    if kind == "Secret" and ref["name"] in secrets:
        return dict(secrets[ref["name"]])
    if ref.get("optional"):
        return None
    raise ManifestError(
        f"container {container}: {kind} {ref['name']} is required but not in the manifests"
    )


def container_env(
    objects: list[Manifest], container: Manifest, secrets: Secrets | None = None
) -> dict[str, str]:
    """The environment the kubelet gives `container`: each ``envFrom`` source in order (a
    later one wins), then ``env`` (wins over all). Secrets come from the manifests or from
    `secrets` (the ones an operator creates); an optional one found in neither (Redis's
    password) is left out, as the kubelet leaves it out when the cluster has none; a required
    one, or a value from the downward API, cannot be resolved and raises `ManifestError`."""
    secrets = {} if secrets is None else secrets
    name = str(container["name"])
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        data = _source(objects, kind, ref, name, secrets)
        if data is not None:
            prefix = str(source.get("prefix", ""))
            env.update({prefix + key: value for key, value in data.items()})
    for var in container.get("env", []):
        if "valueFrom" not in var:
            env[var["name"]] = str(var.get("value", ""))
            continue
        value_from = var["valueFrom"]
        if "configMapKeyRef" in value_from or "secretKeyRef" in value_from:
            kind, ref = (
                ("ConfigMap", value_from["configMapKeyRef"])
                if "configMapKeyRef" in value_from
                else ("Secret", value_from["secretKeyRef"])
            )
            data = _source(objects, kind, ref, name, secrets)
            if data is not None and ref["key"] in data:
                env[var["name"]] = data[ref["key"]]
            elif data is not None and not ref.get("optional"):
                raise ManifestError(f"container {name}: {kind} {ref['name']} has no {ref['key']}")
            continue
        raise ManifestError(f"container {name}: {var['name']} needs a cluster ({value_from})")
    return env


def deployment_specs(
    overlay: Path = EXAMPLE_OVERLAY, secrets: Secrets | None = None
) -> dict[str, ServiceSpec]:
    """Each Deployment's one container as a `ServiceSpec`, keyed by its component
    ("gateway", "engine"): `command` is the container's command + args (the console script
    first), `env` its resolved environment (`secrets`: see `container_env`). Kafka and Redis
    addresses are as the overlay names them, and file settings (JWT_PUBLIC_KEY_PATH) name
    paths inside the pod's mounts (`secret_mounts`): a native run rewrites both."""
    objects = rendered(overlay)
    specs: dict[str, ServiceSpec] = {}
    for deployment in find(objects, "Deployment"):
        container = only_container(deployment)
        command = (*container.get("command", []), *container.get("args", []))
        if not command:
            # without `command` the image's CMD would run, which these manifests cannot see
            raise ManifestError(f"{deployment['metadata']['name']}: no command")
        name = component(deployment)
        specs[name] = ServiceSpec(
            name=name, command=tuple(command), env=container_env(objects, container, secrets)
        )
    return specs


def secret_mounts(overlay: Path = EXAMPLE_OVERLAY) -> dict[str, dict[str, str]]:
    """Per component, where each Secret volume is mounted: mount path -> Secret name. An env
    value under one of these paths is a file the operator provides (the JWT public key)."""
    mounts: dict[str, dict[str, str]] = {}
    for deployment in find(rendered(overlay), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        secrets = {
            volume["name"]: volume["secret"]["secretName"]
            for volume in pod.get("volumes", [])
            if "secret" in volume
        }
        mounts[component(deployment)] = {
            mount["mountPath"]: secrets[mount["name"]]
            for mount in only_container(deployment).get("volumeMounts", [])
            if mount["name"] in secrets
        }
    return mounts
