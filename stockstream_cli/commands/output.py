"""Rendering shared by the commands: results on stdout, progress and messages on stderr."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

STDOUT = "-"  # --output - : stdout


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout, and nothing else there."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def to_stdout(output: Path | str | None) -> bool:
    """Whether --output means stdout (`-o -`)."""
    return output is not None and str(output) == STDOUT


def write_output(output: Path | str, write: Callable[[IO[bytes]], object]) -> None:
    """--output, written safely: `-` is stdout; a device, FIFO or socket (or a link into /dev or /proc, as
    /dev/stdout) is opened and written straight, never replaced; a regular file or a new path is written
    next to it and renamed over it (store.write_atomically), through a symbolic link to its target, so a
    reader never sees half a file and the link stays a link. OSError on failure."""
    from ..dataset.store import write_atomically

    if to_stdout(output):
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    path = Path(output)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if _write_straight(path, target):
        # rendered first, then written by us: some polars versions write a file object through its descriptor
        # and drop the device's error (ENOSPC on /dev/full), which must reach the user
        rendered = io.BytesIO()
        write(rendered)
        with open(path, "wb") as handle:
            handle.write(rendered.getvalue())
        return
    write_atomically(target, write)


def _write_straight(path: Path, target: Path) -> bool:
    try:
        mode = os.stat(path).st_mode  # through links
    except FileNotFoundError:
        return False  # a new path (a dangling link's target included)
    if not stat.S_ISREG(mode):
        return True  # a character or block device, a FIFO, a socket: never renamed over
    return target.parts[1:2] in (("dev",), ("proc",))  # /dev/stdout -> /proc/self/fd/1 -> a redirected file


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def stdout_width(*, minimum: int) -> int:
    """Columns a table on stdout may take: the terminal's (COLUMNS, else the tty's size); when stdout is not
    a terminal, at least `minimum`."""
    import shutil

    columns = shutil.get_terminal_size().columns
    return columns if sys.stdout.isatty() else max(columns, minimum)


def stdout_console():
    from rich.console import Console

    return Console(highlight=False)


QUIET = -1
_verbosity = 0  # -1 quiet, 0 normal, 1 -v, 2 -vv


def set_verbosity(level: int, log_file: str | None = None) -> None:
    """How much goes to stderr (-q: only errors; -v/-vv: the library's and yfinance's log), and a --log-file
    that gets everything at debug level."""
    import logging

    global _verbosity
    _verbosity = level
    # "stockstream" logs what the CLI prints itself (say, warn, errors): to the log file only, never to the
    # terminal a second time; the library's and yfinance's logs go to both
    loggers = [logging.getLogger(name) for name in ("stockstream", "stockstream_cli", "yfinance")]
    handlers: list[logging.Handler] = []
    if level > 0:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.INFO if level == 1 else logging.DEBUG)
        console.setFormatter(logging.Formatter("stockstream: %(name)s: %(message)s"))
        console.addFilter(lambda record: record.name != "stockstream" and not record.name.startswith("stockstream."))
        handlers.append(console)
    if log_file:
        from ..errors import InputError

        try:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as error:
            raise InputError(f"--log-file {log_file}: {error.strerror or error}") from None
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(file_handler)
    for logger in loggers:
        for handler in [h for h in logger.handlers if getattr(h, "_stockstream", False)]:
            logger.removeHandler(handler)
            handler.close()
        for handler in handlers:
            handler._stockstream = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if handlers else logging.NOTSET)
    # what the CLI itself logs ("stockstream") is also printed its own way: never again by logging's last resort
    ours = logging.getLogger("stockstream")
    if not any(isinstance(h, logging.NullHandler) for h in ours.handlers):
        ours.addHandler(logging.NullHandler())


def quiet() -> bool:
    return _verbosity == QUIET


def say(message: str) -> None:
    """A human line on stderr (progress, notes): never mixed into results; logged; not with -q."""
    import logging

    logging.getLogger("stockstream").info(message)
    if not quiet():
        stderr_console().print(message)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """'1 symbol', '1,838 symbols': thousands separated, the noun's number right."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def warn(message: str) -> None:
    """A one-line warning on stderr, in the program's one style."""
    import logging

    logging.getLogger("stockstream").warning(message)
    if not quiet():
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
