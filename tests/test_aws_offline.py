"""Issue 24 items 2 and 7: every command that touches AWS, run without credentials, without a network, and
against an endpoint that refuses, says so in one line (exit 2 for the missing credentials, which the user
fixes; exit 1 for an AWS that cannot be reached) and never shows a traceback; `deploy --dry-run` without
credentials prints the plan for a placeholder account.

In-process through the one CLI runner (a traceback there is an exception other than SystemExit), the waits
of botocore made nil (one attempt), and one real process for the traceback a user would have seen."""

from __future__ import annotations

import json
import socket

import pytest
import typer

from helpers import run_stockstream, runner
from stockstream_cli.cli import app

# Every command of the deployed stack (the ones with --stage), in its AWS-touching form, and the store readers
# pointed at a bucket.
AWS_COMMANDS = {
    "deploy": ["deploy", "--image-uri", "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/stockstream-lambda:t"],
    "deploy --dry-run": ["deploy", "--dry-run"],
    "destroy": ["destroy", "--yes"],
    "destroy --dry-run": ["destroy", "--dry-run"],
    "run-remote": ["run-remote"],
    "logs": ["logs"],
    "status --remote": ["status", "--remote"],
    "rerun-failed --remote": ["rerun-failed", "--remote", "--date", "2026-11-25"],
}
STORE_READERS = {
    "load --store s3://": ["load", "--store", "s3://stockstream-nowhere", "--symbols", "BHP"],
    "status --store s3://": ["status", "--store", "s3://stockstream-nowhere"],
    "actions --store s3://": ["actions", "--store", "s3://stockstream-nowhere"],
    "check --store s3://": ["check", "--store", "s3://stockstream-nowhere"],
}
CASES = {**AWS_COMMANDS, **STORE_READERS}
NEED_CREDENTIALS = sorted(set(CASES) - {"deploy --dry-run"})  # which plans for a placeholder account without


def test_the_table_covers_every_command_of_the_deployed_stack():
    commands = typer.main.get_command(app).commands
    with_stage = {name for name, c in commands.items() if any("--stage" in getattr(p, "opts", ()) for p in c.params)}
    assert with_stage == {args[0] for args in AWS_COMMANDS.values()}


@pytest.fixture
def quick_aws(monkeypatch):
    """One attempt per call, no instance-metadata lookups: nothing waits."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")


@pytest.fixture
def no_credentials(quick_aws, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_network(quick_aws, monkeypatch):
    """No host name resolves, as on a machine without a network."""
    def unresolvable(host, *args, **kwargs):
        if host in ("127.0.0.1", "localhost", "::1"):
            return _real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)


_real_getaddrinfo = socket.getaddrinfo


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed once the socket is: a connection there is refused


@pytest.fixture
def refusing_endpoint(quick_aws, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")


def _run(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}: {type(result.exception).__name__}: {result.exception} (a traceback for the user)")
    assert "Traceback" not in result.output
    return result


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("stockstream: error:")]


@pytest.mark.parametrize("case", NEED_CREDENTIALS)
def test_without_credentials_one_line_exit_2(no_credentials, case):
    result = _run(CASES[case])
    assert result.exit_code == 2, (case, result.output)
    [line] = _error_lines(result)
    assert "no AWS credentials" in line and "--profile" in line


@pytest.mark.parametrize("case", sorted(CASES))
def test_without_a_network_one_line_exit_1(no_network, case):
    result = _run(CASES[case])
    assert result.exit_code == 1, (case, result.output)
    [line] = _error_lines(result)
    assert "cannot reach AWS" in line or "no such host" in line, line


@pytest.mark.parametrize("case", sorted(CASES))
def test_with_an_endpoint_that_refuses_one_line_exit_1(refusing_endpoint, case):
    result = _run(CASES[case])
    assert result.exit_code == 1, (case, result.output)
    [line] = _error_lines(result)
    assert "cannot reach AWS" in line or "cannot reach" in line, line


def test_run_remote_without_credentials_in_a_real_process_shows_no_traceback():
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_MAX_ATTEMPTS": "1", "AWS_REGION": "ap-southeast-2"}
    result = run_stockstream("run-remote", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "stockstream: error: no AWS credentials: pass --profile, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"]


# ---------------------------------------------------------------- deploy --dry-run without credentials


def test_deploy_dry_run_without_credentials_plans_for_a_placeholder_account_and_prices_it(no_credentials, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # AWS_REGION alone names the region, as for the AWS CLI
    result = runner.invoke(app, ["deploy", "--dry-run"])
    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("stockstream:")]
    assert warning.startswith("stockstream: warning: no AWS credentials: the plan is for a placeholder account")
    assert "could not read the account's state" in warning
    assert "+ create s3 bucket stockstream-data-111122223333-ap-southeast-2" in result.stdout
    assert "+ create state machine stock-data-pipeline" in result.stdout
    assert "estimated cost: about $" in result.stdout
    document = json.loads(runner.invoke(app, ["deploy", "--dry-run", "--json"]).stdout)
    assert document["account"] == "111122223333" and document["account_state_read"] is False
    assert document["mutating_calls"] == 0 and document["cost"]["monthly_usd"] > 0


def test_deploy_without_dry_run_still_needs_credentials(no_credentials):
    result = _run(["deploy", "--image-uri", "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/stockstream-lambda:t"])
    assert result.exit_code == 2 and "no AWS credentials" in result.stderr
