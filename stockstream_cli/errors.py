"""The one family of domain exceptions. Each class is one kind of failure a user is told about in one line;
the CLI alone maps them to exit codes (cli.exit_code_for)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable


class StockstreamError(Exception):
    """Base of every error stockstream reports to a user: a message, never a traceback.

    The library speaks of values, each face of its own names for them. `parameter` is the library's name of
    the value at fault (a Settings field, a function's argument: "month", "batch_size"), put before the
    message; other parameters a message mentions are placed with named(). str() names them as the library
    does ("month '2026-13' is not a month: ..."), what the Lambda handlers and the Python API show; the CLI
    renders the same error with its options (naming(options.flag): "--month '2026-13' is not a month: ...")."""

    def __init__(self, message: str = "", parameter: str | None = None):
        self.parameter = parameter
        self.template = f"{named(parameter)} {message}" if parameter else message
        super().__init__(self.naming(_as_is))

    def naming(self, name_of: Callable[[str], str]) -> str:
        """The message with each parameter called what `name_of` calls it."""
        return in_words(self.template, name_of)

    def named_as(self, parameter: str, name: str) -> "StockstreamError":
        """The same error with `parameter` fixed as `name` in every face (a value from the environment is
        named by its variable, whoever reports it)."""
        error = copy.copy(self)
        error.template = self.template.replace(named(parameter), name)
        Exception.__init__(error, error.naming(_as_is))
        return error

    def __reduce__(self):  # crosses process boundaries (run/workers.py) whatever its class's __init__ takes
        return (_rebuilt, (type(self), dict(self.__dict__)))


class InputError(StockstreamError):
    """Bad input or configuration: a value the user can fix. Nothing was sent or written."""


def named(parameter: str) -> str:
    """Where a message mentions one of the library's parameters, to be named by the face that reports it
    (StockstreamError.naming). The marker is NUL-delimited: no command line, environment value or path holds a NUL,
    so nothing a user typed can be taken for one."""
    return f"\0{parameter}\0"


_PLACED = re.compile("\0([a-z][a-z0-9_]*)\0")


def in_words(text: str, name_of: "Callable[[str], str] | None" = None) -> str:
    """A library text (an error's message, a progress note) with each parameter placed by named() called what
    `name_of` calls it (default: the library's own name)."""
    return _PLACED.sub(lambda found: (name_of or _as_is)(found.group(1)), text)


def _as_is(parameter: str) -> str:
    return parameter


def _rebuilt(kind: type, state: dict) -> StockstreamError:
    error = kind.__new__(kind)
    error.__dict__.update(state)
    Exception.__init__(error, error.naming(_as_is))
    return error


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


class VersionChanged(StoreError):
    """An object rewritten between two reads of its parts (S3Store.read_range): read it again, whole."""


class Unhealable(StockstreamError):
    """Retrying cannot help (a full disk, permission denied, a store path that is a file, a host name that
    does not resolve): the run stops at once with this one line, no retry loop, nothing more fetched."""


class StoreUnusable(StoreError, Unhealable):
    """The store cannot be written at all: permission denied, disk full, read-only, no such bucket, no
    such host (exit 1)."""


class StoreNotAFolder(InputError, Unhealable):
    """A local store path that is a file, or under one: bad input (exit 2)."""


class SourceUnreachable(SourceError, Unhealable):
    """The ASX source's host name does not resolve (DNS): retrying in seconds will not change it."""


class YahooUnreachable(Unhealable):
    """Yahoo Finance cannot be reached at all (DNS, a refused connection, TLS, a proxy): every symbol would
    fail the same way, so the run (or the deployed batch, which the Map then retries) stops at once."""

    def __init__(self, cause: str):
        super().__init__(f"Yahoo Finance cannot be reached: {cause}; check the network")
        self.cause = cause

    def __reduce__(self):  # rebuilt from its cause when it crosses a process boundary (run/workers.py)
        return (type(self), (self.cause,))


class BatchFailed(StockstreamError):
    """A whole batch failed (as opposed to some of its symbols): the orchestrator may retry it."""


class BatchCutShort(BatchFailed):
    """A batch stopped before its end, after committing what it fetched (`record`, its stored record: a
    dataset.manifest.Record)."""

    def __init__(self, message: str, record=None):
        super().__init__(message)
        self.record = record


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


class NoCredentials(InputError, Unhealable):
    """The standard credential chain found no AWS credentials: configuration the user fixes; nothing was sent."""

    def __init__(self):
        super().__init__(f"no AWS credentials: pass {named('profile')}, or set AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY")


class StoreWithoutCredentials(NoCredentials, StoreUnusable):
    """An S3 store read or written without AWS credentials (exit 2, as any missing credentials)."""


def first_line(error: BaseException) -> str:
    """An exception's message, first line only (a library's multi-line message in a one-line report);
    its class name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


UNHEALABLE_ERRNOS = {"ENOSPC": "the disk is full", "EDQUOT": "the disk quota is exceeded",
                     "EACCES": "permission denied", "EPERM": "permission denied", "EROFS": "read-only file system"}


def os_error_kind(exc: OSError) -> str | None:
    """"not_a_folder", "unusable" or None (may heal) for an OSError of a store write."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    if name == "ENOTDIR" or (name == "EEXIST" and isinstance(exc, FileExistsError)):
        return "not_a_folder"
    return "unusable" if name in UNHEALABLE_ERRNOS else None


def is_dns_failure(exc: BaseException) -> bool:
    """A host name that does not resolve, anywhere in the exception's chain (requests, urllib3, botocore)."""
    import socket

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, socket.gaierror):
            return True
        text = str(exc)
        if any(marker in text for marker in ("Name or service not known", "Failed to resolve",
                                            "nodename nor servname", "Temporary failure in name resolution",
                                            "getaddrinfo failed", "No address associated with hostname")):
            return True
        wrapped = (getattr(exc, "kwargs", None) or {}).get("error")  # botocore's EndpointConnectionError
        exc = exc.__cause__ or exc.__context__ or (wrapped if isinstance(wrapped, BaseException) else None) or (
            exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None)
    return False


# botocore's exceptions for an AWS that cannot be reached (by class name: see aws_domain_error)
_UNREACHABLE = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
                "ProxyConnectionError", "SSLError"}


def aws_domain_error(exc: BaseException, what: str = "") -> StockstreamError | None:
    """The domain error a botocore exception stands for, one line: no credentials (NoCredentials), an AWS that
    cannot be reached, AWS's refusal with its code and message, any other botocore failure (AwsError); None
    for an exception that is not botocore's (a bug: its traceback is the report). `what`: what was being done.
    The one place these are mapped; found by class name, so botocore is not imported to ask."""
    names = {kind.__name__ for kind in type(exc).__mro__}
    prefix = f"{what}: " if what else ""
    if names & {"NoCredentialsError", "PartialCredentialsError"}:
        return NoCredentials()
    if "ClientError" in names and hasattr(exc, "response"):
        return aws_error(exc, what or "AWS")
    if names & _UNREACHABLE:
        return AwsError(f"{prefix}{unreachable_message(exc)}")
    if "BotoCoreError" in names:
        return AwsError(f"{prefix}{first_line(exc)}")
    return None


def is_unreachable(exc: BaseException) -> bool:
    """botocore could not reach the endpoint (refused, timed out, no route, no such host)."""
    return bool({kind.__name__ for kind in type(exc).__mro__} & _UNREACHABLE)


def unreachable_message(exc: BaseException) -> str:
    return f"cannot reach AWS ({first_line(exc)}); check the network or AWS_ENDPOINT_URL"


def aws_error(exc: BaseException, what: str) -> AwsError:
    """AWS's refusal of a call (a botocore ClientError), one line: what was being done, AWS's code and message;
    the code kept on the error (`.code`) for callers that decide on it."""
    message = (getattr(exc, "response", None) or {}).get("Error", {}).get("Message") or str(exc)
    error = AwsError(f"{what}: {aws_error_code(exc) or type(exc).__name__}: {message}")
    error.code = aws_error_code(exc)  # type: ignore[attr-defined]
    return error


def aws_error_code(exc: BaseException) -> str:
    """The error code of a botocore ClientError ("NoSuchKey", "404", ...), "" for any other exception;
    without importing botocore."""
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
