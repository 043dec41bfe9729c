"""The code of `docs/adding-a-game.md`, taken out of the guide and installed without pip.

The guide marks every file of its example game with a line `<!-- guide-file: <path> -->`
right before the fenced block holding the file's whole content; `<path>` is relative to the
game distribution's root (its `pyproject.toml`). `install_guide_game` writes those files into
a scratch folder and adds a `<name>-<version>.dist-info/` folder (METADATA and
`entry_points.txt`, built from the guide's `pyproject.toml`), which is all
`importlib.metadata` needs to see an installed distribution once the folder is on
`PYTHONPATH`. So the game is found only through its entry points, as a real installed game is.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from tests.support.paths import REPO_ROOT

GUIDE = REPO_ROOT / "docs" / "adding-a-game.md"

_BLOCK = re.compile(
    r"^<!-- guide-file: (?P<path>[^ ]+) -->\n+```[a-z]*\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


def guide_files(text: str | None = None) -> dict[str, str]:
    """Every marked file of the guide: relative path -> content. A path marked twice is an
    error, so one block is the whole file."""
    files: dict[str, str] = {}
    for match in _BLOCK.finditer(GUIDE.read_text() if text is None else text):
        path = match["path"]
        if path in files:
            raise ValueError(f"{path} is marked twice in the guide")
        if path.startswith("/") or ".." in Path(path).parts:
            raise ValueError(f"{path} is not a relative path inside the distribution")
        files[path] = match["body"]
    return files


def _entry_points_txt(groups: Mapping[str, Mapping[str, str]]) -> str:
    sections = [
        "\n".join([f"[{group}]", *(f"{name} = {target}" for name, target in points.items())])
        for group, points in groups.items()
    ]
    return "\n\n".join(sections) + "\n"


def install_guide_game(dest: Path, files: Mapping[str, str] | None = None) -> Path:
    """Write the guide's files under `dest` and make them an installed distribution there;
    returns `dest`, the folder to put on `PYTHONPATH`."""
    files = guide_files() if files is None else files
    for rel, body in files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    project = tomllib.loads(files["pyproject.toml"])["project"]
    name = re.sub(r"[-_.]+", "_", str(project["name"])).lower()
    info = dest / f"{name}-{project['version']}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    (info / "entry_points.txt").write_text(_entry_points_txt(project.get("entry-points", {})))
    return dest


def pythonpath_with(folder: Path) -> str:
    """`PYTHONPATH` with `folder` first, keeping what the environment already had."""
    current = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(folder), current] if current else [str(folder)])
