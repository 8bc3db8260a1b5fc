"""What run-local and rerun-failed share: the day, settings and store they open, their progress, a Ctrl-C
outside the batches, and the summary with its exit code."""

from __future__ import annotations

import contextlib

from ..outcome import Outcome


def prepare(date, store, profile, region, **typed):
    from ..settings import Settings
    from ..values import parse_date

    day = parse_date(date)
    settings = Settings.resolve(store=store, profile=profile, region=region, **typed)
    return day, settings, settings.open_store()


def run_observer(json_output: bool, title: str):
    from .progress import observer_for

    return observer_for(json_output=json_output, title=title)


@contextlib.contextmanager
def interruptible(day):
    """A Ctrl-C that lands outside the batches (a store write, the summary) still exits 130 with advice."""
    from ..errors import Interrupted

    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; run `stockstream rerun-failed --date {day.isoformat()}` to finish the day"
        ) from None


def day_locked(data_store, days, command: str, wait: bool):
    """Hold the store's lock on the day(s) this command writes (locks.py): a second writer exits 2 naming
    the holder, or waits with --wait. Taking it is also the store's write probe: a store that cannot be
    written fails here, before any request to Yahoo."""
    from ..locks import day_lock

    return day_lock(data_store, days, command, wait=wait)


def finish(run: dict, json_output: bool) -> Outcome:
    from ..run import summary as pipeline
    from .output import emit_json, stdout_console
    from .progress import render_run

    if json_output:
        emit_json(pipeline.summary(run))
    else:
        render_run(run, stdout_console())
    return pipeline.outcome(run)
