"""The tree reads as the data flow: each floor imports only the floors below it.

Read from the source's own imports (every ``import``/``from`` anywhere in a module,
function-level ones included), so a new arrow against the flow fails here, with its file.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# bottom to top; the shell is everything of offsite/ itself (cli, demo, soak, eval, bench)
FLOORS = ("core", "rules", "store", "runner", "ingest", "api", "simulators", "shell")


def _floor_of_module(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "offsite":
        return None
    if len(parts) > 1 and parts[1] in FLOORS:
        return parts[1]
    return "shell"


def _modules() -> list[tuple[str, Path]]:
    """(floor, file) for every module of the package, found through pyproject's map."""
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    out = []
    for package, folder in dirs.items():
        floor = _floor_of_module(package)
        assert floor is not None
        for path in sorted((ROOT / folder).rglob("*.py")):
            if package == "offsite" or floor != "shell":
                out.append((floor, path))
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def test_every_folder_of_the_package_is_on_a_floor() -> None:
    floors = {floor for floor, _ in _modules()}
    assert floors == set(FLOORS)


def test_no_import_runs_against_the_flow() -> None:
    rank = {f: i for i, f in enumerate(FLOORS)}
    against = []
    for floor, path in _modules():
        for line, name in _imports(path):
            target = _floor_of_module(name)
            if target is not None and rank[target] > rank[floor]:
                against.append(f"{path.relative_to(ROOT)}:{line} ({floor}) imports {name}")
    assert not against, "\n".join(against)


def test_the_source_imports_no_folder_by_its_bare_name() -> None:
    bare = {"core", "rules", "store", "ingest", "runner", "api", "simulators", "bench"}
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for _, path in _modules()
        for line, name in _imports(path)
        if name.split(".")[0] in bare
    ]
    assert not found, "\n".join(found)
