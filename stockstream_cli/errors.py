"""The one family of domain exceptions. Each class is one kind of failure a user is told about in one line;
the CLI alone maps them to exit codes (cli.exit_code_for)."""

from __future__ import annotations


class StockstreamError(Exception):
    """Base of every error stockstream reports to a user: a message, never a traceback."""


class InputError(StockstreamError):
    """Bad input or configuration: a value the user can fix. Nothing was sent or written."""


class SourceError(StockstreamError):
    """The ASX list source answered with something that is not a usable list, or not at all."""


class StoreError(StockstreamError):
    """The store could not be read or written (permissions, network, a missing bucket)."""


class CorruptFileError(StoreError):
    """A file in the store is not what stockstream wrote there."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"corrupt or foreign file in the store: {key} ({reason})")
        self.key = key


class KeyNotFound(StoreError):
    """A key the caller expected is not in the store."""

    def __init__(self, key: str, store_uri: str = ""):
        where = f" in {store_uri}" if store_uri else ""
        super().__init__(f"{key} not found{where}")
        self.key = key


class BatchFailed(StockstreamError):
    """A whole batch failed (as opposed to some of its symbols): the orchestrator may retry it."""


class BatchCutShort(BatchFailed):
    """A batch stopped before its end, after writing what it fetched (`document`, its stored manifest)."""

    def __init__(self, message: str, document: dict | None = None):
        super().__init__(message)
        self.document = document


class BatchBlocked(BatchCutShort):
    """Most of a batch answered "not found": Yahoo is blocking the client (fetch/block.py). Retried later;
    the state machine sees this name (States.TaskFailed retries it)."""


class BatchInterrupted(BatchCutShort):
    """The fetcher's deadline came (Lambda's remaining time): the rest is recorded as interrupted and the
    state machine's Retry continues from there."""


class Interrupted(StockstreamError):
    """The user stopped a run (Ctrl-C): what finished is kept, and the message says how to finish the rest."""


class AwsError(StockstreamError):
    """An AWS call failed in a way the user has to act on."""


def first_line(error: BaseException) -> str:
    """An exception's message, first line only (a library's multi-line message in a one-line report);
    its class name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def aws_error_code(exc: BaseException) -> str:
    """The error code of a botocore ClientError ("NoSuchKey", "404", ...), "" for any other exception;
    without importing botocore."""
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
