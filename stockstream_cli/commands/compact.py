"""`stockstream compact`: store maintenance that makes reading back fast (see compact.py)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import options
from ..dataset.store import store_of

Months = Annotated[
    Optional[list[str]],
    typer.Option("--month", metavar="YYYY-MM", help="Compact this month, YYYY-MM (repeat for several) [default: every month before "
                 "the current one].", show_default=False),
]
DryRun = Annotated[bool, typer.Option("--dry-run", "-n", help="Show what would be compacted; change nothing.")]


def register(app: typer.Typer) -> None:
    app.command("compact")(compact)


def compact(
    month: Months = None,
    dry_run: DryRun = False,
    store: options.Store = None,
    profile: options.Profile = None,
    region: options.Region = None,
    json: options.Json = False,
    wait: options.Wait = False,
) -> None:
    """Merge each month's batch files and backfill chunks into one sorted file, raw-data/compacted-YYYY-MM.parquet.

    Reading a year back then opens a dozen files instead of thousands (what makes `load` slow on S3).
    `load` reads compacted and batch files alike, the newest fetch of each (symbol, date) winning, so a
    day rerun after its month was compacted still shows its newest rows; compacting the month again folds
    them in. The merged files are deleted once the compacted file is written; runs/ is untouched.

    Examples: `stockstream compact --dry-run`; `stockstream compact --month 2026-01 --store s3://bucket`.
    """
    from ..dataset.compact import compact as run_compact, compact_locked
    from .output import emit_json
    from ..settings import Settings

    settings = Settings.resolve(store=store, profile=profile, region=region)
    target = store_of(settings, must_exist=True)
    if dry_run:
        result = run_compact(target, months=month, dry_run=True)
    else:  # holding the day lock of every day it folds, as the pipeline's step does
        result = compact_locked(target, command="compact", months=month, wait=wait)
    if json:
        emit_json(result)
        return
    if not result["months"]:
        typer.echo(f"nothing to compact in {target.uri}: no batch files of a finished month"
                   + (" among " + ", ".join(month) if month else ""))
        return
    verb = "would compact" if dry_run else "compacted"
    for item in result["months"]:
        rows = "" if item["rows"] is None else f", {item['rows']} rows, {item['bytes'] / 1e6:.1f} MB"
        typer.echo(f"{item['month']}: {verb} {item['files']} batch files into {item['key']}{rows}")

