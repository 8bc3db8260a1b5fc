"""`stockstream logs`: the deployed functions' logs, from CloudWatch Logs."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import options

Function = Annotated[
    Optional[str], typer.Option("--function", help="updater or fetcher [default: both].", show_default=False)
]
Since = Annotated[str, typer.Option("--since", help="From this long ago (90s, 30m, 1h, 2d) or an ISO time.")]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")]


def logs(
    function: Function = None,
    since: Since = "1h",
    follow: Follow = False,
    stage: options.Stage = None,
    region: options.Region = None,
    profile: options.Profile = None,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per event (JSON lines) on stdout.")] = False,
) -> None:
    """Print the deployed functions' log events, oldest first: `TIME  FUNCTION  MESSAGE`.

    Example: stockstream logs --function fetcher --since 30m --follow
    """
    import datetime as dt
    import json as json_module

    from ..settings import Settings
    from ..aws.remote import read_logs

    settings = Settings.resolve(profile=profile, region=region)

    def show(event: dict) -> None:
        if json:
            typer.echo(json_module.dumps(event))
            return
        moment = dt.datetime.fromtimestamp(event["timestamp"] / 1000, dt.timezone.utc)
        typer.echo(f"{moment.isoformat(timespec='seconds').replace('+00:00', 'Z')}  "
                   f"{event['group'].rsplit('/', 1)[-1]}  {event['message']}")

    try:
        read_logs(function=function, since=since, follow=follow, stage=stage, profile=settings.profile,
                  region=settings.region, on_event=show, poll_interval=max(settings.poll_interval, 1.0))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
