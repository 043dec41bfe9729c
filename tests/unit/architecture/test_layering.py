"""The import graph of Parlour's packages: no cycle, and the layers stay apart.

Beside the rules' purity test (no I/O in the rules): this one reads every `import` of the
packages (the protocol, the runtime kit, both services and the client) from the AST (lazy
imports and `TYPE_CHECKING` imports count too), builds the module graph, and checks
- no import cycle between modules (imports that run; `TYPE_CHECKING` ones are type names);
- the services never import each other; the protocol and the runtime kit import no service;
- the gateway's `session` module never imports the `gateway` module (it gets a small deps
  object instead);
- the engine's rules import nothing from the engine's I/O modules, nor from `games/`
  (the plug-in contract: the wiring passes the game registry in). KNOWN lists edges that
  break a contract and are still to be removed; it is empty, and must stay so.

Edges follow what an `import` names (as grimp/import-linter do): `from a.b import c` is an
edge to `a.b.c` when that is a module, else to `a.b`; the implicit import of parent packages
is not an edge. The checker itself is tested on made-up graphs, so a forbidden import added to
the source is known to fail this test.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
PACKAGES = {
    "parlour_protocol": ROOT / "libs/protocol/parlour_protocol",
    "parlour_runtime": ROOT / "libs/runtime/parlour_runtime",
    "parlour_gateway": ROOT / "services/gateway/parlour_gateway",
    "parlour_engine": ROOT / "services/game_engine/parlour_engine",
    "parlour_client": ROOT / "libs/client/parlour_client",
}

Graph = Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class Forbidden:
    """No module under `importer` may import a module under any of `imported`."""

    importer: str
    imported: tuple[str, ...]
    why: str


CONTRACTS = (
    Forbidden(
        "parlour_client",
        ("parlour_gateway", "parlour_engine", "parlour_runtime"),
        "the client speaks only the protocol, like any program outside the deployment",
    ),
    Forbidden("parlour_gateway", ("parlour_engine",), "the services never import each other"),
    Forbidden("parlour_engine", ("parlour_gateway",), "the services never import each other"),
    Forbidden(
        "parlour_protocol",
        ("parlour_gateway", "parlour_engine", "parlour_runtime"),
        "the protocol is the bottom layer both services share",
    ),
    Forbidden(
        "parlour_runtime",
        ("parlour_gateway", "parlour_engine"),
        "the runtime kit is shared by both services",
    ),
    Forbidden(
        "parlour_gateway.session",
        ("parlour_gateway.gateway", "parlour_gateway.main", "parlour_gateway.app"),
        "a session gets its dependencies as one small object, not the whole gateway",
    ),
    Forbidden(
        "parlour_engine.rules",
        (
            "parlour_engine.games",
            "parlour_engine.app",
            "parlour_engine.worker",
            "parlour_engine.store",
            "parlour_engine.settings",
            "parlour_engine.metrics",
            "parlour_engine.main",
        ),
        "the rules are a pure core: no I/O module, and games plug in through a contract",
    ),
)

# Edges that break a contract today, each with the issue that removes it. The test fails when
# one of these disappears (so the list shrinks) and when any edge not listed here appears.
KNOWN: dict[tuple[str, str], str] = {}


def _module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:` (never imported at run time)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        ):
            for child in node.body:
                found.update(id(n) for n in ast.walk(child))
    return found


def build_graph(
    packages: Mapping[str, Path], *, type_only: bool = True
) -> dict[str, frozenset[str]]:
    """Module -> the modules it imports; `type_only=False` leaves out `TYPE_CHECKING` imports."""
    files: dict[str, Path] = {}
    for package, root in packages.items():
        for path in sorted(root.rglob("*.py")):
            files[_module_name(package, root, path)] = path
    ours = tuple(packages)
    graph: dict[str, frozenset[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        skip = set() if type_only else _type_only(tree)
        for node in ast.walk(tree):
            names: list[str] = []
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = module if is_package else module.rpartition(".")[0]
                    base = anchor.split(".")[: len(anchor.split(".")) - (node.level - 1)]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                names = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in files else source
                    for alias in node.names
                ]
            for name in names:
                if not name.startswith(ours):
                    continue
                # an import of a package's attribute that is not a module lands on the package
                while name not in files and "." in name:
                    name = name.rpartition(".")[0]
                if name in files and name != module:
                    targets.add(name)
        graph[module] = frozenset(targets)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            if children:
                child = children.pop()
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(graph: Graph, contracts: Iterable[Forbidden]) -> set[tuple[str, str]]:
    bad: set[tuple[str, str]] = set()
    for contract in contracts:
        for importer, targets in graph.items():
            if not _under(importer, contract.importer):
                continue
            for target in targets:
                if any(_under(target, p) for p in contract.imported):
                    bad.add((importer, target))
    return bad


# --------------------------------------------------------------------------- the real graph


@pytest.fixture(scope="module")
def graph() -> dict[str, frozenset[str]]:
    return build_graph(PACKAGES)


@pytest.fixture(scope="module")
def runtime_graph() -> dict[str, frozenset[str]]:
    return build_graph(PACKAGES, type_only=False)


def test_the_graph_sees_every_module(graph: Graph) -> None:
    # a sanity check on the walker: known edges of today's code are found
    assert len(graph) > 60
    assert "parlour_protocol.v1" in graph["parlour_gateway.session"] or any(
        _under(t, "parlour_protocol") for t in graph["parlour_gateway.session"]
    )
    assert any(_under(t, "parlour_engine.rules") for t in graph["parlour_engine.worker"])


def test_no_import_cycle(runtime_graph: Graph) -> None:
    # `if TYPE_CHECKING:` imports are how a module names a type from a module that imports
    # it; they never run, so they are left out here (the layer contracts below count them)
    assert cycles(runtime_graph) == []


def test_layers_stay_apart(graph: Graph) -> None:
    found = violations(graph, CONTRACTS)
    unexpected = sorted(found - KNOWN.keys())
    gone = sorted(KNOWN.keys() - found)
    assert unexpected == [], f"forbidden imports: {unexpected}"
    assert gone == [], f"remove these from KNOWN, they are fixed: {gone}"


# --------------------------------------------------------------------------- the checker


def _with(graph: Graph, importer: str, imported: str) -> dict[str, frozenset[str]]:
    changed = dict(graph)
    changed[importer] = graph.get(importer, frozenset()) | {imported}
    return changed


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("parlour_gateway.session", "parlour_gateway.gateway"),
        ("parlour_gateway.hub", "parlour_engine.rules"),
        ("parlour_engine.worker", "parlour_gateway.auth"),
        ("parlour_protocol.v1.codec", "parlour_gateway.session"),
        ("parlour_runtime.kafka_security", "parlour_engine.settings"),
        ("parlour_engine.rules.state", "parlour_engine.store"),
    ],
)
def test_an_added_forbidden_import_is_caught(graph: Graph, importer: str, imported: str) -> None:
    assert (importer, imported) in violations(_with(graph, importer, imported), CONTRACTS)


def test_an_added_cycle_is_caught(graph: Graph) -> None:
    # the protocol's codec importing the gateway's session closes a loop through the gateway
    looped = _with(graph, "parlour_protocol.v1.codec", "parlour_gateway.session")
    assert any("parlour_protocol.v1.codec" in c for c in cycles(looped))
    assert cycles({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}) == [
        ["a", "b", "c"]
    ]
    assert cycles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_relative_and_lazy_imports_are_edges(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\n")
    (pkg / "sub" / "leaf.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg import top\n"
        "def f():\n    from ..top import thing\n"
    )
    (pkg / "top.py").write_text("import pkg.sub.leaf\n")
    g = build_graph({"pkg": pkg})
    assert g["pkg.sub"] == {"pkg.sub.leaf"}
    assert g["pkg.sub.leaf"] == {"pkg.top"}
    assert g["pkg.top"] == {"pkg.sub.leaf"}
    assert cycles(g) == [["pkg.sub.leaf", "pkg.top"]]
    # at run time the TYPE_CHECKING import is not there, the lazy one is
    assert build_graph({"pkg": pkg}, type_only=False)["pkg.sub.leaf"] == {"pkg.top"}
    (pkg / "sub" / "leaf.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import top\n"
    )
    runtime = build_graph({"pkg": pkg}, type_only=False)
    assert runtime["pkg.sub.leaf"] == set()
    assert cycles(runtime) == []
