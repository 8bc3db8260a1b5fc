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
