"""The library speaks of values, the CLI of flags: a library error names a parameter by its library name
(errors.named, `parameter=`), and each face renders it its own way: the CLI as the option (options.flag),
the Lambda handlers and the Python API as the library's name, a value from the environment as its variable."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest
import typer

import stockstream_cli
from stockstream_cli.errors import InputError, StockstreamError, StoreNotAFolder, named
from stockstream_cli.options import flag
from stockstream_cli.settings import Settings

from helpers import runner

PACKAGE_DIR = Path(stockstream_cli.__file__).parent
FACES = ("cli.py", "options.py", "commands")
FLAG_RE = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


def stockstream_options() -> set[str]:
    """Every long option of the stockstream command line, without its dashes."""
    from stockstream_cli.cli import app

    group = typer.main.get_command(app)
    commands = [group, *group.commands.values()]
    return {opt[2:] for command in commands for param in command.params for opt in getattr(param, "opts", ())
            if opt.startswith("--")}


def library_modules() -> list[Path]:
    return [path for path in sorted(PACKAGE_DIR.rglob("*.py"))
            if path.relative_to(PACKAGE_DIR).parts[0] not in FACES]


def _is_call_to(node: ast.AST, name: str) -> bool:
    func = node.func if isinstance(node, ast.Call) else None
    return (isinstance(func, ast.Name) and func.id == name) or (isinstance(func, ast.Attribute) and func.attr == name)


def message_texts(tree: ast.AST) -> list[tuple[int, str]]:
    """The literal text of what the module raises or builds as an error (raise statements, calls of a
    ...Error class, module constants in capitals), without the advice of hints.command (an accepted way to
    print a command) and without named(...) (a parameter the face names)."""
    roots = [node for node in ast.walk(tree)
             if isinstance(node, ast.Raise) and node.exc is not None
             or isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
             and (getattr(node.func, "id", None) or node.func.attr)[:1].isupper()]
    roots += [node.value for node in getattr(tree, "body", []) if isinstance(node, ast.Assign)
              and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)]
    texts = []

    def collect(node: ast.AST) -> None:
        if isinstance(node, ast.Call) and (_is_call_to(node, "command") or _is_call_to(node, "named")):
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append((node.lineno, node.value))
        for child in ast.iter_child_nodes(node):
            collect(child)

    for root in roots:
        collect(root)
    return texts


def test_no_library_error_names_a_cli_flag():
    options = stockstream_options()
    found = []
    for path in library_modules():
        for line, text in message_texts(ast.parse(path.read_text(encoding="utf-8"))):
            flags = [f"--{word}" for word in FLAG_RE.findall(text) if word in options]
            if flags:
                found.append(f"{path.relative_to(PACKAGE_DIR)}:{line}: {' '.join(flags)} in {text!r}")
    assert found == [], "library messages name CLI flags (use parameter= or errors.named):\n" + "\n".join(found)


def test_the_scan_finds_a_flag_where_one_is_written():
    tree = ast.parse('def f(x):\n    raise InputError(f"--month {x!r} is not a month")\n'
                     'NO_THING = "pass --profile"\n'
                     'def g():\n    raise InputError(f"run `{hints.command(\'symbols\', \'--date\', d)}` first")\n')
    texts = [text for _, text in message_texts(tree)]
    assert "--month " in texts and "pass --profile" in texts and "--date" not in texts


def test_an_error_names_its_parameter_as_each_face_does():
    error = InputError("'2026-13' is not a month: use YYYY-MM, e.g. 2026-01", parameter="month")
    assert str(error) == "month '2026-13' is not a month: use YYYY-MM, e.g. 2026-01"
    assert error.naming(flag) == "--month '2026-13' is not a month: use YYYY-MM, e.g. 2026-01"
    assert error.parameter == "month"
    mentioned = InputError(f"no list: give {named('batch_number')}, or run `symbols` first")
    assert str(mentioned) == "no list: give batch_number, or run `symbols` first"
    assert mentioned.naming(flag) == "no list: give --batch-number, or run `symbols` first"


def test_an_error_keeps_its_naming_across_processes():
    error = pickle.loads(pickle.dumps(StoreNotAFolder("/x: /x is a file", parameter="store")))
    assert isinstance(error, StoreNotAFolder) and str(error) == "store /x: /x is a file"
    assert error.naming(flag) == "--store /x: /x is a file"


def test_a_setting_is_named_by_where_it_came_from():
    with pytest.raises(InputError) as typed:
        Settings.resolve({}, batch_size=0)
    assert typed.value.naming(flag) == "--batch-size must be at least 1, got 0"
    assert str(typed.value) == "batch_size must be at least 1, got 0"
    for environ, expected in (({"STOCKSTREAM_BATCH_SIZE": "0"}, "STOCKSTREAM_BATCH_SIZE must be at least 1, got 0"),
                              ({"STOCKSTREAM_DELAY": "soon"}, "STOCKSTREAM_DELAY must be a number, got 'soon'"),
                              ({"STOCKSTREAM_TIMEOUT": "0"}, "STOCKSTREAM_TIMEOUT must be at least 0.001, got 0")):
        with pytest.raises(InputError) as raised:
            Settings.resolve(environ)
        assert raised.value.naming(flag) == expected and str(raised.value) == expected


def test_the_cli_names_the_option_and_the_python_api_the_argument(tmp_path):
    from stockstream_cli.cli import app

    result = runner.invoke(app, ["compact", "--month", "2026-13", "--store", str(tmp_path)])
    assert result.exit_code == 2
    assert "--month '2026-13' is not a month: use YYYY-MM, e.g. 2026-01" in result.stderr
    from stockstream_cli import DataAggregator

    with pytest.raises(StockstreamError) as raised:
        DataAggregator(str(tmp_path)).load_date_range("2026-02-01", "2026-01-01")
    assert str(raised.value) == "start 2026-02-01 is after end 2026-01-01: give the earlier date first"
