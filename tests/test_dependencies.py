"""Every third-party module the code imports is declared: the package's and the Lambda handlers' imports by
[project.dependencies], the tests' and benchmarks' by those plus the test extra.

An undeclared import works wherever something else happens to bring the module in (moto[server] brings click
through Flask) and fails for a user's plain `pip install .`. Imports are found by walking the source's syntax
trees; the standard library is `sys.stdlib_module_names`; a module's distribution comes from
`importlib.metadata.packages_distributions()` of the installed environment. A module imported lazily (inside a
function) may instead belong to an optional extra: `chart` imports matplotlib only when it draws.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME_CODE = ("stockstream_cli", "lambda_src")
TEST_CODE = ("tests", "benchmarks")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def declared(*extras: str) -> set[str]:
    names = {requirement_name(r) for r in PYPROJECT["dependencies"]}
    for extra in extras:
        names |= {requirement_name(r) for r in PYPROJECT["optional-dependencies"][extra]}
    return names


def local_names(folders: tuple[str, ...]) -> set[str]:
    """Top-level names that are the project's own: its folders and the modules in them (tests import helpers)."""
    names = set(folders) | {"stockstream_cli"}
    for folder in folders:
        names |= {path.stem for path in (ROOT / folder).iterdir() if path.suffix == ".py" or path.is_dir()}
    return names


def third_party_imports(folders: tuple[str, ...]) -> dict[str, list[tuple[str, bool]]]:
    """{top-level module: [(where, imported at module level?)]} of every absolute import outside the stdlib."""
    local = local_names(folders)
    found: dict[str, list[tuple[str, bool]]] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            top_level = {id(node) for node in tree.body}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    name = module.split(".")[0]
                    if name in sys.stdlib_module_names or name in local or name == "__future__":
                        continue
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.setdefault(name, []).append((where, id(node) in top_level))
    return found


def undeclared(folders: tuple[str, ...], allowed: set[str], lazily_allowed: set[str]) -> list[str]:
    distributions = metadata.packages_distributions()
    problems = []
    for module, places in sorted(third_party_imports(folders).items()):
        owners = {canonical(d) for d in distributions.get(module, [])}
        eager = [where for where, at_top in places if at_top]
        if not owners and not eager and canonical(module) in lazily_allowed:
            continue  # an optional extra's module, not installed here: imported only when its feature runs
        if not owners:
            problems.append(f"{module} ({places[0][0]}): not installed, so no distribution declares it")
        elif not owners & allowed:
            if owners & lazily_allowed and not eager:
                continue
            problems.append(f"{module} ({(eager or [places[0][0]])[0]}): from {'/'.join(sorted(owners))}, "
                            f"which pyproject.toml does not declare there")
    return problems


def optional_extras() -> tuple[str, ...]:
    return tuple(extra for extra in PYPROJECT["optional-dependencies"] if extra != "test")


def test_the_package_and_the_handlers_import_only_runtime_dependencies():
    assert undeclared(RUNTIME_CODE, declared(), declared(*optional_extras())) == []


def test_tests_and_benchmarks_import_only_runtime_and_test_dependencies():
    assert undeclared(TEST_CODE, declared("test"), set()) == []


def test_the_check_sees_an_undeclared_import(tmp_path, monkeypatch):
    """The walk itself: a module imported at the top level and declared nowhere is reported, with its place."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("import os\nimport click\nfrom . import sibling\n"
                                             "def later():\n    import matplotlib\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = third_party_imports(("pkg",))
    assert sorted(found) == ["click", "matplotlib"]
    assert found["click"] == [("pkg/mod.py:2", True)] and found["matplotlib"] == [("pkg/mod.py:5", False)]
    problems = undeclared(("pkg",), {"typer"}, {"matplotlib"})
    assert len(problems) == 1 and problems[0].startswith("click (pkg/mod.py:2)")


if __name__ == "__main__":  # CI runs this in a plain `pip install .`, where pytest is not installed
    found = undeclared(RUNTIME_CODE, declared(), declared(*optional_extras()))
    print("\n".join(found) or "every import of stockstream_cli and lambda_src is a declared runtime dependency")
    sys.exit(1 if found else 0)
