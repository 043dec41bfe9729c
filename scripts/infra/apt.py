"""Installing missing Debian packages: with apt-get when running as root, otherwise an error
that names the exact command to run."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infra.console import InfraError, say


@dataclass(frozen=True)
class Need:
    """A command something needs, and the Debian package that provides it."""

    command: str
    package: str
    why: str


def _apt_lists_fresh(max_age: float = 24 * 3600) -> bool:
    lists = list(Path("/var/lib/apt/lists").glob("*_Packages*"))
    return bool(lists) and time.time() - max(p.stat().st_mtime for p in lists) < max_age


def apt_install(*needs: Need, instead: str = "") -> dict[str, str]:
    """The path of each needed command, installing the packages of the missing ones first.

    Installs only as root on a machine with apt-get; otherwise raises an InfraError that
    names what is missing, why, and the command that installs it all (`instead`: an
    alternative to installing)."""
    missing = [need for need in needs if shutil.which(need.command) is None]
    packages = list(dict.fromkeys(need.package for need in missing))
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if missing and (os.geteuid() != 0 or shutil.which("apt-get") is None):
        what = ", ".join(f"{need.command} ({need.why})" for need in missing)
        raise InfraError(
            f"not installed: {what}; install with `sudo {' '.join(install)}`"
            + (f", or {instead}" if instead else "")
        )
    if missing:
        say(f"apt    installing {' '.join(packages)} with apt-get ...")
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
    found: dict[str, str] = {}
    for need in needs:
        path = shutil.which(need.command)
        if path is None:
            raise InfraError(f"apt-get installed {need.package} but {need.command} is not on PATH")
        found[need.command] = path
    return found
