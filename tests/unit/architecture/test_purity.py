"""The rules core and the game plugins do no I/O: no import of a network, clock or event-loop
module anywhere in their source (checked on the AST, so lazy imports count too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import parlour_engine.games
import parlour_engine.rules

FORBIDDEN = {
    "asyncio",
    "redis",
    "faststream",
    "aiokafka",
    "time",
    "socket",
    "threading",
    "subprocess",
    "os",
    "httpx",
    "requests",
    "structlog",
    "logging",
}
PACKAGES = [Path(parlour_engine.rules.__file__).parent, Path(parlour_engine.games.__file__).parent]


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


SOURCES = [p for pkg in PACKAGES for p in sorted(pkg.rglob("*.py"))]
RULES_DIR = PACKAGES[0]
HANDLER_MODULES = ("rooms", "lobby", "absence", "chat")
"""The rules modules that register room-command handlers; `dispatch` collects them."""


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_rules_module_imports_nothing_doing_io(path: Path) -> None:
    bad = [name for name in _imports(path) if name.split(".")[0] in FORBIDDEN]
    assert bad == [], f"{path.name} imports {bad}"


def test_every_rules_module_is_walked() -> None:
    walked = {p.stem for p in SOURCES if p.parent == RULES_DIR}
    expected = {*HANDLER_MODULES, "dispatch", "queries", "oracle", "context", "state", "types"}
    assert expected <= walked


@pytest.mark.parametrize("module", HANDLER_MODULES)
def test_handler_modules_never_import_the_dispatcher(module: str) -> None:
    # dispatch imports the handler modules; the reverse would be an import cycle
    path = RULES_DIR / f"{module}.py"
    named: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            named.append(node.module)
            named.extend(f"{node.module}.{alias.name}" for alias in node.names)
    # the package itself counts: its __init__ imports dispatch
    upward = {f"parlour_engine.rules{tail}" for tail in ("", ".dispatch", ".oracle")}
    assert [name for name in named if name in upward] == []


def test_rules_import_pulls_in_no_io_library() -> None:
    code = (
        "import sys; import parlour_engine.rules, parlour_engine.games.bigger_dice;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'redis','faststream','aiokafka','asyncio'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
