"""Parlour's image and compose files as Docker would read them, without a Docker engine.

- `compose_services()`: the command and environment the compose file gives the gateway and
  the engine (``${VAR:-default}`` interpolated as Compose does), as `ServiceSpec`s, so an
  integration test can start the services natively from them;
- `load_compose()` and `interpolate()`: the compose file itself;
- `dockerfile()`: the Dockerfile's stages and instructions (continuation lines joined,
  heredocs kept), and `dockerignored()`: whether the build context leaves a path out.

Used by tests/unit/deploy/test_compose.py and tests/unit/deploy/test_image.py.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML, through kubernetes-validate

from tests.support.paths import REPO_ROOT
from tests.support.service_spec import ServiceSpec

COMPOSE_DIR = REPO_ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
JWT_OVERRIDE_FILE = COMPOSE_DIR / "docker-compose.jwt.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

#: the console scripts that make a compose service one of Parlour's
CONSOLE_SCRIPTS = ("parlour-gateway", "parlour-engine")


class ComposeError(Exception):
    """The compose file cannot be read the way Compose reads it."""


# --- compose ---

# Compose's interpolation: $$ (a literal $), ${NAME}, ${NAME:-default}, ${NAME-default},
# ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt} and $NAME
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """`text` with its variables replaced from `environ` as Compose replaces them (one level:
    a default holding a variable is not expanded again, which the files here never need)."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = environ.get(name)
        unset_or_empty = not value
        if op in (":-", "-"):
            return arg if (unset_or_empty if op == ":-" else value is None) else str(value)
        if op in (":?", "?"):
            if unset_or_empty if op == ":?" else value is None:
                raise ComposeError(f"${{{name}}} is required: {arg}")
            return str(value)
        if op in (":+", "+"):
            return "" if (unset_or_empty if op == ":+" else value is None) else arg
        return value or ""

    return _VARIABLE.sub(replace, text)


def variables_used(text: str) -> dict[str, str | None]:
    """Each variable the text interpolates -> its `:-`/`-` default (None without one)."""
    found: dict[str, str | None] = {}
    for match in _VARIABLE.finditer(text):
        name = match["braced"] or match["bare"]
        if not name:
            continue
        default = match["arg"] if match["op"] in (":-", "-") else None
        found[name] = default if found.get(name) is None else found[name]
    return found


def _interpolated(node: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environ)
    if isinstance(node, list):
        return [_interpolated(item, environ) for item in node]
    if isinstance(node, dict):
        return {key: _interpolated(value, environ) for key, value in node.items()}
    return node


def load_compose(
    path: Path = COMPOSE_FILE, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The compose file with anchors merged and variables interpolated from `environ` (none
    set: every default applies, as with no .env and a clean shell)."""
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ComposeError(f"{path}: not a mapping")
    loaded: dict[str, Any] = _interpolated(raw, environ or {})
    return loaded


def services(path: Path = COMPOSE_FILE, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `services` section of a compose file."""
    found = load_compose(path, environ).get("services")
    if not isinstance(found, dict):
        raise ComposeError(f"{path}: no services")
    return found


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment` as Compose passes it: list or mapping syntax, every value a
    string (YAML's 9998 and true become "9998" and "true"; a bare name takes no value)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: pair[1] if len(pair) == 2 else "" for pair in pairs}
    return {str(key): _env_value(value) for key, value in env.items()}


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def command(service: Mapping[str, Any]) -> tuple[str, ...]:
    """A service's `command` as an argv (the string form split the way Compose splits it)."""
    cmd = service.get("command")
    if cmd is None:
        return ()
    if isinstance(cmd, str):
        return tuple(shlex.split(cmd))
    return tuple(str(arg) for arg in cmd)


def compose_services(
    path: Path = COMPOSE_FILE, environ: Mapping[str, str] | None = None
) -> dict[str, ServiceSpec]:
    """Compose service name -> what it runs, for every service whose command is one of
    Parlour's console scripts (the gateway and the engine). Kafka and Redis addresses are
    as the compose file names them (``kafka:9092``, ``redis://redis:6379/0``): a caller
    that runs the services elsewhere rewrites them."""
    found: dict[str, ServiceSpec] = {}
    for name, service in services(path, environ).items():
        argv = command(service)
        if argv and argv[0] in CONSOLE_SCRIPTS:
            found[name] = ServiceSpec(name=name, command=argv, env=environment(service))
    if not found:
        raise ComposeError(f"{path}: no service runs {' or '.join(CONSOLE_SCRIPTS)}")
    return found


def bind_mount_sources(service: Mapping[str, Any], base: Path = COMPOSE_DIR) -> list[Path]:
    """The host paths a service bind-mounts (relative ones resolved from the compose file's
    directory, as Compose resolves them); named volumes are left out."""
    sources: list[Path] = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") != "bind":
                continue
            source = str(volume["source"])
        else:
            source = str(volume).split(":", 1)[0]
            if not source.startswith((".", "/", "~")):
                continue  # a named volume
        sources.append((base / source).resolve())
    return sources


# --- Dockerfile ---


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: `keyword` in upper case, `args` with continuation lines
    joined, `heredocs` delimiter -> body (without the delimiter lines)."""

    keyword: str
    args: str
    heredocs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """A build stage: its base image (ARG defaults substituted), its name, its instructions."""

    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass(frozen=True)
class Dockerfile:
    global_args: dict[str, str]
    stages: tuple[Stage, ...]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


_HEREDOC = re.compile(r"<<-?([\"']?)([A-Za-z_][A-Za-z0-9_]*)\1")


_CONTINUATION = re.compile(r"\\[ \t]*$")


def _instructions(text: str) -> list[Instruction]:
    # Docker's rules: a line ending in a backslash continues on the next one, which is
    # appended as it is (its leading whitespace kept, no separator added); comment and
    # blank lines inside a continuation are dropped
    lines = text.splitlines()
    found: list[Instruction] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        logical, continued = _CONTINUATION.subn("", line)
        while continued and i < len(lines):
            following = lines[i]
            i += 1
            if not following.strip() or following.lstrip().startswith("#"):
                continue
            following, continued = _CONTINUATION.subn("", following)
            logical += following
        keyword, _, args = logical.strip().partition(" ")
        heredocs: dict[str, str] = {}
        for match in _HEREDOC.finditer(args):
            delimiter = match.group(2)
            body: list[str] = []
            while i < len(lines) and lines[i].strip() != delimiter:
                body.append(lines[i])
                i += 1
            i += 1  # the delimiter line
            heredocs[delimiter] = "\n".join(body) + "\n"
        found.append(Instruction(keyword.upper(), args.strip(), heredocs))
    return found


def dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    """The Dockerfile split into stages, each FROM's image with ARG defaults substituted."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    base, name = "", None
    for instruction in _instructions(path.read_text()):
        if instruction.keyword == "FROM":
            if current is not None:
                stages.append(Stage(base, name, tuple(current)))
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            base = interpolate(words[0], global_args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            current = []
        elif current is None:
            if instruction.keyword == "ARG":
                key, _, default = instruction.args.partition("=")
                global_args[key.strip()] = default.strip()
        else:
            current.append(instruction)
    if current is not None:
        stages.append(Stage(base, name, tuple(current)))
    return Dockerfile(global_args, tuple(stages))


# --- .dockerignore ---


def _dockerignore_patterns(path: Path) -> list[tuple[bool, str]]:
    patterns: list[tuple[bool, str]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        patterns.append((negated, pattern))
    return patterns


def _segment(part: str) -> str:
    # one path segment of a pattern: `*` and `?` never cross a `/`
    out, i = "", 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[" and "]" in part[i + 1 :]:
            end = part.index("]", i + 1)
            body = part[i + 1 : end]
            out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return out


def _matches(pattern: str, relative: str) -> bool:
    # Docker's matcher: `**` spans any number of directories (none included)
    regex = ""
    parts = pattern.split("/")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _segment(part) + ("" if last else "/")
    return re.fullmatch(regex, relative) is not None


def dockerignored(relative: str | PurePosixPath, path: Path = DOCKERIGNORE) -> bool:
    """True when the build context leaves out `relative` (a path from the repository root):
    the last pattern matching it or one of its parent directories decides, as in Docker."""
    target = PurePosixPath(relative)
    candidates = [str(target), *(str(parent) for parent in target.parents if str(parent) != ".")]
    excluded = False
    for negated, pattern in _dockerignore_patterns(path):
        if any(_matches(pattern, candidate) for candidate in candidates):
            excluded = not negated
    return excluded
