"""`stockstream status`: what the store holds for a day, at a glance or as JSON. Exit 0 complete, 3 not."""

from __future__ import annotations

import typer

from ..outcome import Outcome
from .. import options

from ..options import Remote as RemoteFlag
from ..dataset.store import store_of

FAILED_SYMBOLS_SHOWN = 12  # per reason, in the human view; --json lists them all


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(
    date: options.StoredDate = None,
    store: options.Store = None,
    json: options.Json = False,
    profile: options.Profile = None,
    region: options.Region = None,
    remote: RemoteFlag = False,
    stage: options.Stage = None,
) -> Outcome:
    """What the store holds for a day (default: the latest): symbols, batches done and missing, symbols failed
    by reason, the run's duration. --remote: the deployed state machine's latest executions and their outcome.

    Exit 0 when the day is complete, 3 when batches are missing or symbols failed (then
    `stockstream rerun-failed --date D` finishes it), 2 when the store has no such day.

    Examples: `stockstream status`; `stockstream status --date 2026-01-05 --json`.
    """
    from ..settings import Settings

    settings = Settings.resolve(store=store, profile=profile, region=region)
    # The deployed pipeline's view (--remote) is a second source beside this one, rendered its own way.
    if remote:
        from .remote import status_remote

        return status_remote(date=date, profile=profile, region=region, json_output=json, stage=stage)
    report = _local_status(settings, date)
    if json:
        from .output import emit_json

        emit_json(report.to_json())
    else:
        _print_report(report)
    return report.outcome


def _local_status(settings, date: str | None):
    from ..dataset.status import day_status
    from ..values import parse_date

    day = None if date is None else parse_date(date)
    return day_status(store_of(settings, must_exist=True), day)


def _print_report(report) -> None:
    from rich.table import Table

    from .output import stdout_console

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("Day", report.date.isoformat())
    grid.add_row("Store", report.store)
    grid.add_row("Symbols", _symbols_line(report))
    grid.add_row("Batches", _batches_line(report))
    from .output import counted

    grid.add_row("Fetched", f"{report.symbols_fetched:,} of {counted(report.total_symbols, 'symbol')}")
    grid.add_row("Failed", _failed_text(report))
    grid.add_row("Run", _run_line(report))
    grid.add_row("Status", _verdict(report))
    console = stdout_console()
    console.print(grid)


def _symbols_line(report) -> str:
    if report.has_symbols_list:
        from .output import counted

        return f"{report.total_symbols:,} in {counted(len(report.batches), 'batch', 'batches')}"
    return f"{report.total_symbols:,} (no symbols list for this day: counted from the run records)"


def _batches_line(report):
    from rich.text import Text

    line = Text(f"{len(report.batches_done)} / {len(report.batches)} done")
    if report.batches_missing:
        line.append(f"  missing: {_batch_numbers(report.batches_missing)}", style="red")
    return line


def _failed_text(report):
    from rich.table import Table

    if not report.failure_reasons:
        return "none"
    reasons = Table.grid(padding=(0, 2))
    reasons.add_column(style="yellow", no_wrap=True)
    reasons.add_column(justify="right")
    reasons.add_column()
    from .output import counted

    reasons.add_row(counted(len(report.failure_reasons), "symbol"), "", "")
    for reason, symbols in report.failed_by_reason.items():
        shown = " ".join(symbols[:FAILED_SYMBOLS_SHOWN])
        if len(symbols) > FAILED_SYMBOLS_SHOWN:
            shown += f" … (+{len(symbols) - FAILED_SYMBOLS_SHOWN} more; --json lists all)"
        reasons.add_row(reason, str(len(symbols)), shown)
    return reasons


def _run_line(report) -> str:
    if report.run is None:
        return "no run summary (runs/D/run.json) for this day"
    run = report.run
    failed = run.get("batches_failed") or []
    extra = f", failed: {_batch_numbers(failed)}" if failed else ""
    day_run = run.get("day_run")
    if isinstance(day_run, dict):  # a rerun rewrote run.json: the day's run first, then the last rerun apart
        return (f"{report.run_outcome}{extra}; the day's run took {_took(day_run)}{_by(day_run)}, "
                f"the last {run.get('command') or 'rerun'} {_took(run)}{_by(run, name=False)}{_part(run)}")
    stopped = f"; stopped by: {run['error']}" if run.get("error") else ""
    return f"{report.run_outcome} in {_took(run)}{extra}{_by(run)}{stopped}{_part(run)}"


def _part(run: dict) -> str:
    """'; a part of the day: --symbols BHP CBA' for a run asked for part of the day (run.json "part")."""
    part = run.get("part")
    if not isinstance(part, dict):
        return ""
    for name in ("symbols", "batches"):
        if isinstance(part.get(name), list):
            return f"; a part of the day only: --{name} {' '.join(str(item) for item in part[name])}"
    return ""


def _took(run: dict) -> str:
    seconds = run.get("execution_time")
    return _duration(seconds) if isinstance(seconds, (int, float)) else "a time not recorded"


def _by(run: dict, *, name: bool = True) -> str:
    """' (run-local, finished 2026-...)': who wrote the record, and when."""
    parts = [run["command"]] if name and run.get("command") else []
    if run.get("finished_at"):
        parts.append(f"finished {run['finished_at']}")
    return f" ({', '.join(parts)})" if parts else ""


def _verdict(report):
    from rich.text import Text

    from .. import hints
    from ..reasons import LASTING

    if report.complete:
        return Text("complete", style="bold green")
    day = report.date.isoformat()
    lasting = set(report.failed_by_reason) <= LASTING
    if report.run is not None and _part(report.run):  # rerun-failed would retry only that part
        hint = f"the last run fetched part of the day; `{hints.command('run-local', '--date', day)}` fetches all of it"
    elif report.batches_missing or not lasting:
        hint = f"run `{hints.command('rerun-failed', '--date', day)}` to finish it"
    else:
        hint = (f"only {' and '.join(sorted(report.failed_by_reason))} failures: "
                f"`{hints.command('rerun-failed', '--date', day, '--all')}` tries them again")
    return Text(f"incomplete: {hint}", style="bold red")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s"


def _batch_numbers(values) -> str:
    """'batch 0', 'batches 0, 3': never a bare number that reads as a count."""
    return ("batch " if len(values) == 1 else "batches ") + _numbers(values)


def _numbers(values) -> str:
    values = [str(value) for value in values]
    return ", ".join(values) if len(values) <= 20 else ", ".join(values[:20]) + f", … (+{len(values) - 20})"
