"""The example game of `docs/adding-a-game.md` is there in full and parses; that it also
plays is `tests/integration/guide/test_guide.py`."""

from __future__ import annotations

import ast
import importlib.util
import tomllib

from parlour_engine.games import ENTRY_POINT_GROUP as ENGINE_GROUP
from parlour_protocol.v1.registry import ENTRY_POINT_GROUP as PROTOCOL_GROUP
from tests.support.guide import guide_files

PACKAGE = "higher_or_lower"


def test_the_guide_marks_every_file_of_the_example() -> None:
    assert set(guide_files()) == {
        "pyproject.toml",
        f"{PACKAGE}/__init__.py",
        f"{PACKAGE}/protocol.py",
        f"{PACKAGE}/rules.py",
    }


def test_the_python_blocks_parse() -> None:
    for path, body in guide_files().items():
        if path.endswith(".py"):
            ast.parse(body, filename=path)


def test_the_pyproject_declares_both_entry_points_to_files_of_the_guide() -> None:
    files = guide_files()
    groups = tomllib.loads(files["pyproject.toml"])["project"]["entry-points"]
    assert set(groups) == {PROTOCOL_GROUP, ENGINE_GROUP}
    for points in groups.values():
        assert list(points) == [PACKAGE]  # the entry-point name is the game's name
        module, _, attribute = points[PACKAGE].partition(":")
        source = files[module.replace(".", "/") + ".py"]
        assigned = {
            target.id
            for node in ast.parse(source).body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        assert attribute in assigned, points[PACKAGE]


def test_the_example_is_not_a_package_of_this_repository() -> None:
    """So the integration test finds the game through its entry points only."""
    assert importlib.util.find_spec(PACKAGE) is None
    assert importlib.util.find_spec(f"parlour_protocol.v1.games.{PACKAGE}") is None
    assert importlib.util.find_spec(f"parlour_engine.games.{PACKAGE}") is None
