"""The package's shape: every module imports on its own, the modules' imports form no cycle, and only the
CLI layer (cli.py, options.py, commands/) imports typer or rich."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import stockstream_cli

PACKAGE_DIR = Path(stockstream_cli.__file__).parent
CLI_LAYER = ("stockstream_cli.cli", "stockstream_cli.options", "stockstream_cli.commands")
UI_LIBRARIES = ("typer", "rich", "click")


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__main__" or parts[1:2] in (("infra",), ("lambda_src",)):
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def module_path(name: str) -> Path:
    path = PACKAGE_DIR.parent.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports_of(name: str, known: set[str] | None = None) -> set[str]:
    """Every module `name` imports, at its top or inside a function, as absolute names (`from . import layout`
    is the module layout, when `known` says it is one)."""
    path = module_path(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & (known or set())
            found.update(submodules or {target})
    return found


def package_graph() -> dict[str, set[str]]:
    names = set(module_names())
    # a module's own packages are imported before it anyway: those edges are no dependency
    return {name: {i for i in imports_of(name, names) if i in names and not name.startswith(i)} for name in names}


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    names = module_names()
    assert "stockstream_cli.run.types" in names and len(names) > 40
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    for name in names:
        result = subprocess.run([sys.executable, "-c", script, name], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr.strip().splitlines()[-1:]}"


def test_the_modules_imports_form_no_cycle():
    graph = package_graph()
    state: dict[str, str] = {}
    cycle: list[str] = []

    def visit(name: str, path: list[str]) -> bool:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycle.extend(path[path.index(target):] + [name, target] if target in path else [name, target])
                return True
            if target not in state and visit(target, path + [name]):
                return True
        state[name] = "done"
        return False

    for name in sorted(graph):
        if name not in state and visit(name, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_the_run_types_are_a_leaf_of_the_run():
    graph = package_graph()
    assert not {t for t in graph["stockstream_cli.run.types"] if t.startswith("stockstream_cli.run")}
    assert "stockstream_cli.run.local" not in graph["stockstream_cli.run.workers"]


@pytest.mark.parametrize("name", module_names())
def test_only_the_cli_layer_imports_typer_or_rich(name):
    ui = {i for i in imports_of(name) if i.split(".")[0] in UI_LIBRARIES}
    if name.startswith(CLI_LAYER):
        return
    assert not ui, f"{name} imports {sorted(ui)}: only cli.py, options.py and commands/ may"


# The rooms (first-level subpackages and modules; the package itself is the Python API, a face) by floor, as
# the README's code map draws them: an import may only point down, or to a leaf. Leaves import only leaves.
FLOORS = {"stockstream_cli": 0, "cli": 0, "__main__": 0, "commands": 0, "options": 0, "aws": 1, "run": 2,
          "quality": 3, "fetch": 4, "sources": 5, "dataset": 6}
LEAF = 7


def room_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def room_graph() -> dict[str, dict[str, set[str]]]:
    """{room: {room it imports: the module pairs that do}}, every import counted (function-local too)."""
    rooms: dict[str, dict[str, set[str]]] = {}
    for name, targets in package_graph().items():
        here = room_of(name)
        edges = rooms.setdefault(here, {})
        for target in targets:
            if room_of(target) != here and target != "stockstream_cli":
                edges.setdefault(room_of(target), set()).add(f"{name} -> {target}")
    return rooms


def test_the_rooms_form_no_cycle():
    graph = room_graph()
    state: dict[str, str] = {}

    def cycle_from(room: str, path: list[str]) -> list[str] | None:
        state[room] = "open"
        for target in sorted(graph.get(room, {})):
            if state.get(target) == "open":
                return path + [room, target]
            if target not in state and (found := cycle_from(target, path + [room])):
                return found
        state[room] = "done"
        return None

    for room in sorted(graph):
        if room not in state and (found := cycle_from(room, [])):
            pytest.fail("rooms import each other: " + " -> ".join(found))


def test_every_import_points_down_a_floor_or_to_a_leaf():
    upward = []
    for room, edges in room_graph().items():
        for target, pairs in edges.items():
            floor, target_floor = FLOORS.get(room, LEAF), FLOORS.get(target, LEAF)
            if target_floor < floor or (floor == LEAF and target_floor != LEAF):
                upward.append(sorted(pairs)[0])
    assert not upward, upward


@pytest.mark.parametrize("room, forbidden, why", [
    ("fetch", "dataset", "fetch is pure: rows out, the commit stores them"),
    ("sources", "dataset", "the outside world knows no store"),
    ("commands", "dataset.locks", "faces take no lock"),
    ("run", "dataset.locks", "locks are the dataset's"),
    ("aws", "dataset.locks", "locks are the dataset's"),
    ("quality", "run", "check reads, never runs"),
])
def test_what_a_room_never_imports(room, forbidden, why):
    found = sorted(pair for name, targets in package_graph().items() if room_of(name) == room
                   for target in targets if target == f"stockstream_cli.{forbidden}"
                   or target.startswith(f"stockstream_cli.{forbidden}.") for pair in [f"{name} -> {target}"])
    assert not found, f"{why}: {found}"
