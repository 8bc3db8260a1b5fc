"""The commands stockstream prints as advice ("run `stockstream rerun-failed --date D`"), built in one place.

A hint carries the options the user gave on the command line (--store, --profile, --region, --stage) that
the hinted command accepts, so it works when pasted. The CLI records what was typed (remember) and says which
options each command accepts (set_accepted_options); the library only calls command(). Without the CLI (the
Lambda handlers, the Python API) hints are the bare commands.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

CARRIED = ("store", "profile", "region", "stage")

_given: dict[str, str] = {}
_accepted: Callable[[str], set[str] | None] = lambda name: None  # noqa: E731 - the CLI replaces it


def remember(option: str, value: object) -> None:
    """Record an option the user typed (None: not typed)."""
    if value is not None and option in CARRIED:
        _given[option] = str(value)


def forget() -> None:
    """Nothing typed, no command known: before an invocation, and after it, so that a later library call in
    the same process (the Python API, a test) gets bare hints."""
    global _accepted
    _given.clear()
    _accepted = lambda name: None  # noqa: E731


def set_accepted_options(lookup: Callable[[str], set[str] | None]) -> None:
    """lookup(command) -> the long option names it takes ("store", "date", ...); None when unknown."""
    global _accepted
    _accepted = lookup


def command(*words: str) -> str:
    """`stockstream WORDS...` plus the carried options the user gave that this command accepts."""
    name = words[0] if words else ""
    accepted = _accepted(name)
    parts = ["stockstream", *words]
    for option in CARRIED:
        flag = f"--{option}"
        if option in _given and flag not in words and (accepted is None or option in accepted):
            parts += [flag, _given[option]]
    return shlex.join(parts)
