"""Rendering shared by the commands: results on stdout, progress and messages on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout, and nothing else there."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def stdout_console():
    from rich.console import Console

    return Console(highlight=False)


def say(message: str) -> None:
    """A human line on stderr (progress, notes): never mixed into results."""
    stderr_console().print(message)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """'1 symbol', '1,838 symbols': thousands separated, the noun's number right."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def warn(message: str) -> None:
    """A one-line warning on stderr, in the program's one style."""
    sys.stderr.write(f"stockstream: warning: {message}\n")
    sys.stderr.flush()


def pipeline_day(date: str | None):
    """The --date of a pipeline command: parsed and checked (values.check_pipeline_day), a warning printed
    when it is not an ASX session."""
    from ..values import check_pipeline_day, parse_date

    day = parse_date(date)
    warning = check_pipeline_day(day)
    if warning:
        warn(warning)
    return day
