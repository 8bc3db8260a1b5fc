"""What run-local and rerun-failed share: the day, settings and store they open, their progress, a Ctrl-C
outside the batches, and the summary with its exit code."""

from __future__ import annotations

import contextlib

from ..outcome import Outcome
from ..dataset.store import store_of


def prepare(date, store, profile, region, **typed):
    from ..settings import Settings
    from .output import pipeline_day

    day = pipeline_day(date)
    settings = Settings.resolve(store=store, profile=profile, region=region, **typed)
    return day, settings, store_of(settings)


def run_observer(json_output: bool, title: str):
    from .progress import observer_for

    return observer_for(json_output=json_output, title=title)


@contextlib.contextmanager
def sigterm_as_ctrl_c():
    """SIGTERM (kill, a supervisor, a container stopping) stops the run as Ctrl-C does: what was fetched is
    committed and recorded, exit 130. Only the main thread can install a handler; elsewhere, nothing changes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interruptible(day):
    """Ctrl-C or SIGTERM stops the run; one that lands outside the batches (a store write, the summary) still
    exits 130 with advice."""
    from .. import hints
    from ..errors import Interrupted

    try:
        with sigterm_as_ctrl_c():
            yield
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; run `{hints.command('rerun-failed', '--date', day.isoformat())}` to finish the day"
        ) from None


def _say_nothing_to_do(run: dict) -> None:
    import typer

    from .output import counted
    from .progress import rerun_hint

    typer.echo(f"nothing to rerun on {run['date']}: every batch has a result and no symbol failed retryably")
    if run["symbols_failed"]:
        typer.echo(f"{counted(len(run['symbols_failed']), 'symbol')} failed for good. {rerun_hint(run)}")


def finish(run: dict, json_output: bool) -> Outcome:
    from ..dataset import summary as run_summary
    from .output import emit_json, stdout_console
    from .progress import render_run

    from ..run.rerun import NOTHING_TO_DO

    if json_output:
        emit_json(run_summary.summary(run))
    elif run.get(NOTHING_TO_DO):
        _say_nothing_to_do(run)
    else:
        render_run(run, stdout_console())
    return run_summary.outcome(run)
