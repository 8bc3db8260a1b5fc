"""botocore's exceptions as domain errors, for the deployer and the remote operations (the session itself is
clients.py's, shared with the store)."""

from __future__ import annotations

import contextlib

from ..errors import InputError


@contextlib.contextmanager
def aws_errors(what: str):
    """botocore's exceptions as domain errors saying what was being done (errors.aws_domain_error: no
    credentials is bad input, an unreachable endpoint or any other AWS failure an AwsError). The CLI maps
    any that escape without this context the same way."""
    from ..errors import aws_domain_error

    try:
        yield
    except Exception as exc:
        error = aws_domain_error(exc, what)
        if error is None:
            raise
        raise error from None
