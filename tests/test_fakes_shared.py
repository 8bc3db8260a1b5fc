"""One fake per seam, shared by the tests and the benchmarks: Yahoo (tests/yahoo_fake.py), the ASX list source
(tests/asx_fake.py), AWS (tests/aws_fake.py) and time (tests/clock.py). No other module of tests/ or
benchmarks/ starts a moto server, serves HTTP, writes the Markit list's header or defines a clock or a sleep
of its own: a second copy of a fake drifts from the first, and then the tests and the benchmarks measure two
different worlds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEAMS = {"yahoo": "tests/yahoo_fake.py", "asx": "tests/asx_fake.py", "aws": "tests/aws_fake.py",
         "clock": "tests/clock.py"}
# A reverse proxy adding latency in front of the AWS fake (benchmarks only): it fakes no source itself.
OTHER_HTTP_SERVERS = {"benchmarks/latency_proxy.py"}
HTTP_SERVERS = {"HTTPServer", "ThreadingHTTPServer", "BaseHTTPRequestHandler", "SimpleHTTPRequestHandler"}
CLOCK_NAMES = {"sleep", "clock", "now", "monotonic", "time", "get_time"}
MARKIT_HEADER = '"ASX code","Company name"'
THIS = "tests/test_fakes_shared.py"  # it names what it looks for


def modules() -> list[str]:
    found = sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
    return [path.relative_to(ROOT).as_posix() for path in found]


def names_used(tree: ast.AST) -> set[str]:
    """Every name a module refers to: bare, as an attribute, or imported (`from moto.server import X`)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {alias.name.rsplit(".", 1)[-1] for alias in node.names}
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
    return found


def strings(tree: ast.AST) -> list[str]:
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def clock_definitions(tree: ast.AST) -> list[str]:
    """Classes named as clocks or times, and functions or methods named as a clock's or a sleep."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name.lower().endswith(("clock", "clocks", "time", "waits")):
            found.append(f"class {node.name} (line {node.lineno})")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.strip("_") in CLOCK_NAMES:
            found.append(f"def {node.name} (line {node.lineno})")
    return found


def seam_fakes(path: str) -> dict[str, list[str]]:
    """{seam: what in the module at `path` fakes it}, for every seam it fakes."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), path)
    used, texts = names_used(tree), strings(tree)
    found = {
        "aws": sorted(used & {"ThreadedMotoServer", "moto.server"}) + [s for s in texts if "moto.server" in s],
        "asx": (sorted(used & HTTP_SERVERS) if path not in OTHER_HTTP_SERVERS else [])
               + ["the Markit header" for s in texts if MARKIT_HEADER in s],
        "clock": clock_definitions(tree),
    }
    return {seam: what for seam, what in found.items() if what}


def test_each_seam_module_holds_its_fake():
    assert all((ROOT / path).is_file() for path in SEAMS.values())
    for seam in ("aws", "asx", "clock"):
        assert seam in seam_fakes(SEAMS[seam])


@pytest.mark.parametrize("path", [path for path in modules() if path not in {*SEAMS.values(), THIS}])
def test_no_other_module_fakes_a_seam(path):
    found = seam_fakes(path)
    assert found == {}, f"{path} fakes a seam itself ({found}): use {', '.join(SEAMS[seam] for seam in found)}"


def test_the_check_sees_each_kind_of_copy(tmp_path, monkeypatch):
    """The check finds what this project's tests and benchmarks once held: cost_bench.py's own moto server and
    per-thread clock, fixtures/asx/asx_lists.py's list server, test_pacing.py's FakeTime, a sleep that moves a
    clock."""
    copy = '''
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from moto.server import ThreadedMotoServer
LIST = '"ASX code","Company name","GICs industry group","Listing date","Market Cap"'

class SimulatedWaits:
    def clock(self):
        return 0.0

def test_x():
    def sleep(seconds):
        pass
'''
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "copy.py").write_text(copy)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    found = seam_fakes("tests/copy.py")
    assert found["aws"] == ["ThreadedMotoServer", "moto.server"]
    assert found["asx"] == ["BaseHTTPRequestHandler", "ThreadingHTTPServer", "the Markit header"]
    assert found["clock"] == ["class SimulatedWaits (line 6)", "def clock (line 7)", "def sleep (line 11)"]
