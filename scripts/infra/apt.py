"""Installing a missing Debian package: with apt-get when running as root, otherwise an
error that names the exact command to run."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from infra.console import InfraError, say


def _apt_lists_fresh(max_age: float = 24 * 3600) -> bool:
    lists = list(Path("/var/lib/apt/lists").glob("*_Packages*"))
    return bool(lists) and time.time() - max(p.stat().st_mtime for p in lists) < max_age


def apt_install(command: str, package: str, *, why: str, instead: str = "") -> str:
    """The path of `command`, installing Debian `package` first when it is missing.

    Installs only as root on a machine with apt-get; otherwise raises an InfraError naming
    the command to run (`why` says what needs it, `instead` an alternative to installing)."""
    found = shutil.which(command)
    if found:
        return found
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise InfraError(
            f"{command} not found ({why}): install it (`sudo {' '.join(install)}`)"
            + (f", or {instead}" if instead else "")
        )
    say(f"apt    {command} is missing; installing {package} with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    update = ["apt-get", "update", "-q"]

    def run(step: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(step, env=env, capture_output=True, text=True, check=False)

    updated = False
    if not _apt_lists_fresh():
        run(update)
        updated = True
    result = run(install)
    if result.returncode != 0 and not updated:  # the package lists may be stale after all
        run(update)
        result = run(install)
    if result.returncode != 0:
        raise InfraError(f"`{' '.join(install)}` failed: {result.stderr.strip()[-400:]}")
    found = shutil.which(command)
    if found is None:
        raise InfraError(f"apt-get installed {package} but {command} is not on PATH")
    return found
