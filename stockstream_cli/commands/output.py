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
