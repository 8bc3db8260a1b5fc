"""`stockstream symbols`: download, check and store the day's ASX list."""

from __future__ import annotations


import typer

from .. import options
from ..thresholds import DEFAULT_SOURCE_FLOOR, MIN_SHARE_OF_PREVIOUS
from ..dataset.store import store_of


def register(app) -> None:
    app.command("symbols")(symbols)


@options.quoting(share=MIN_SHARE_OF_PREVIOUS, floor=DEFAULT_SOURCE_FLOOR)
def symbols(
    date: options.Date = None,
    batch_size: options.BatchSize = None,
    source_url: options.SourceUrl = None,
    from_file: options.FromFile = None,
    force: options.Force = False,
    store: options.Store = None,
    profile: options.Profile = None,
    region: options.Region = None,
    json: options.Json = False,
) -> None:
    """Download the ASX list of listed companies, check it and write symbols/D-symbols.csv.

    The list is refused (exit 1, nothing written) when it is not a list, or when it shrank below {share}% of the
    latest earlier list in the store ({floor:,} symbols for the default source with no earlier list);
    --force accepts a short list.

    Example: stockstream symbols --date 2026-08-22 --store ./data --json
    """
    from ..run.symbols import update_symbols
    from ..errors import InputError
    from .output import emit_json
    from ..settings import Settings
    from .output import pipeline_day

    day = pipeline_day(date)
    if source_url is not None and from_file is not None:
        raise InputError("--source-url and --from-file cannot be used together: choose one source")
    settings = Settings.resolve(store=store, batch_size=batch_size, source_url=source_url, profile=profile, region=region)
    target = store_of(settings)

    update = update_symbols(target, day, settings, from_file=from_file, force=force, note=_note)
    if json:
        emit_json(update.to_document())
    else:
        _print_summary(update, day, target.uri, settings.batch_size)


def _note(message: str) -> None:
    # Plain text, not rich: the notes quote what the source sent, which may hold [brackets] and long URLs.
    typer.echo(f"stockstream: {message}", err=True)


def _print_summary(update, day, store_uri: str, batch_size: int) -> None:
    batches = len(update.batches)
    lines = [
        f"ASX list for {day.isoformat()}: {len(update.symbols):,} symbols in {batches} "
        f"batch{'es' if batches != 1 else ''} of up to {batch_size}",
        f"written to {store_uri.rstrip('/')}/{update.key}",
    ]
    if update.previous_key is None:
        lines.append("no earlier list in the store to compare with")
    else:
        added, removed = update.changes["added"], update.changes["removed"]
        lines.append(f"since {update.previous_key}: {len(added)} added{_some(added)}, {len(removed)} removed{_some(removed)}")
    typer.echo("\n".join(lines))


def _some(symbols: list[str], limit: int = 10) -> str:
    if not symbols:
        return ""
    shown = ", ".join(symbols[:limit])
    return f" ({shown}{', ...' if len(symbols) > limit else ''})"
