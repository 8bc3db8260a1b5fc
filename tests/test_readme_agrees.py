"""The README and the CLI cannot drift: every `stockstream ...` command the README shows (in ``` blocks and in
inline `code`) names a real command, and every option it shows is in that command's --help."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stockstream_cli.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
runner = CliRunner()
COMMANDS = set(typer.main.get_command(app).commands)
OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def readme_commands(text: str) -> list[str]:
    """Each command line shown: code-block lines (with their indented continuation lines) and inline spans."""
    shown: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        current: str | None = None
        for line in block.splitlines():
            line = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
            if current is not None and line.startswith(" ") and line.strip().startswith("["):
                current += " " + line.strip()
                continue
            if current is not None:
                shown.append(current)
                current = None
            if "stockstream " in line:
                current = line[line.index("stockstream "):]
        if current is not None:
            shown.append(current)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    shown += re.findall(r"`(stockstream [^`]+)`", prose)
    return [re.split(r"\s(?:&&|;|>)\s", command)[0].strip() for command in shown]


@lru_cache(maxsize=None)
def help_options(command: str | None) -> frozenset[str]:
    result = runner.invoke(app, [command, "--help"] if command else ["--help"])
    assert result.exit_code == 0, result.output
    # only the options --help defines (a line's leading "-o, --output"), not those its prose mentions
    defined = [match.group(1) for line in result.output.splitlines()
               if (match := re.match(r"^ {2}(-[\w-]+(?:, --?[\w-]+)*)", line))]
    return frozenset(option for names in defined for option in names.replace("/", ", ").split(", "))


CASES = readme_commands(README.read_text())


def test_a_drift_is_caught():
    shown = readme_commands("```\nstockstream symbols [--date D] [--retries 3]\n     [--retry-wait 2]\n```\n"
                            "and `stockstream status --remote --stage prod`")
    assert shown == ["stockstream symbols [--date D] [--retries 3] [--retry-wait 2]",
                     "stockstream status --remote --stage prod"]
    assert "--retries" not in help_options("symbols") and "--date" in help_options("symbols")
    assert "--stage" in help_options("status")


def test_the_readme_shows_commands():
    assert len(CASES) > 40 and any(case.startswith("stockstream run-local") for case in CASES)


@pytest.mark.parametrize("shown", CASES)
def test_every_command_and_option_the_readme_shows_exists(shown):
    words = shown.split()
    command = words[1] if len(words) > 1 and not words[1].startswith("-") else None
    if command is not None and command not in COMMANDS:
        pytest.fail(f"README shows `{shown}`, but there is no command {command!r}")
    options = {option for option in OPTION.findall(" ".join(words[2 if command else 1:])) if option != "-"}
    missing = sorted(options - help_options(command))
    assert not missing, f"README shows `{shown}`; `stockstream {command or ''} --help` has no {missing}"


def test_ci_runs_the_quick_starts_test_command_as_the_readme_writes_it():
    """.ci/run's readme part reads the command from the README (.ci/readme_command.py), so they cannot drift."""
    import importlib.util
    import subprocess

    root = README.parent
    spec = importlib.util.spec_from_file_location("readme_command", root / ".ci" / "readme_command.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    command = module.quick_start_test_command(README.read_text(encoding="utf-8"))
    assert command == "pip install '.[test]' && python -m pytest -q"
    ci = (root / ".ci" / "run").read_text(encoding="utf-8")
    assert '"$PYTHON" "$SRC/.ci/readme_command.py" "$SRC/README.md"' in ci and 'bash -c "$command"' in ci
    assert "\npart readme readme_as_written\n" in ci
    assert subprocess.run(["bash", "-n", str(root / ".ci" / "run")]).returncode == 0
    with pytest.raises(ValueError, match="2 pytest commands"):
        module.quick_start_test_command("# x\n## Quick start\n```bash\npytest\n```\n```bash\npython -m pytest\n```\n")
