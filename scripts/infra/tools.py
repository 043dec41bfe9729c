"""What `make test` needs besides Kafka and Redis, installed the way `up` installs
redis-server: chromium (the browser tests drive Debian's chromium; Playwright never downloads
one), promtool from Debian's prometheus (the alert rules' tests), node with npm (the
AsyncAPI document is checked with the official parser, scripts/asyncapi_check/) and a
kustomize (tests/unit/deploy renders deploy/k8s): kubectl's own, or kustomize built from the
Go module proxy into .infra/bin when kubectl is missing (it is not a Debian package)."""

from __future__ import annotations

import os
import shutil
import subprocess

from infra.apt import Need, apt_install
from infra.console import InfraError, say
from infra.paths import INFRA

# kustomize's own module; v5.5.0 is the kustomize kubectl 1.32 carries
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5@v5.5.0"
KUSTOMIZE_BIN = INFRA / "bin" / "kustomize"

TEST_TOOLS = (
    Need("chromium", "chromium", "the browser tests drive it"),
    Need("promtool", "prometheus", "tests/unit/deploy checks the alert rules with it"),
    Need("node", "nodejs", "runs the AsyncAPI check"),
    Need("npm", "npm", "installs the AsyncAPI parser"),
)


def ensure_test_tools() -> None:
    """Install every missing test tool, or fail naming the command that would."""
    found = apt_install(*TEST_TOOLS)
    found["kustomize"] = ensure_kustomize()
    say("tools  " + ", ".join(found) + " present")


def ensure_kustomize() -> str:
    """kubectl (which carries kustomize) when installed, else .infra/bin/kustomize, built with
    `go install` from the Go module proxy the first time."""
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return kubectl
    if KUSTOMIZE_BIN.exists():
        return str(KUSTOMIZE_BIN)
    go = shutil.which("go")
    if go is None:
        raise InfraError(
            "neither kubectl nor go is installed: tests/unit/deploy renders deploy/k8s with "
            "kustomize; install kubectl (https://kubernetes.io/docs/tasks/tools/) or Go"
        )
    say(f"go     installing {KUSTOMIZE_MODULE} into {KUSTOMIZE_BIN.parent} ...")
    env = {**os.environ, "GOBIN": str(KUSTOMIZE_BIN.parent), "GOFLAGS": "-mod=mod"}
    result = subprocess.run(
        [go, "install", KUSTOMIZE_MODULE], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not KUSTOMIZE_BIN.exists():
        raise InfraError(f"go install {KUSTOMIZE_MODULE} failed:\n{result.stderr[-2000:]}")
    return str(KUSTOMIZE_BIN)
