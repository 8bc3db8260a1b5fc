"""botocore's exceptions as domain errors, for the deployer and the remote operations (the session itself is
clients.py's, shared with the store)."""

from __future__ import annotations

import contextlib

from ..errors import InputError


@contextlib.contextmanager
def aws_errors(what: str):
    """The one place botocore's exceptions become domain errors, one line each: no credentials is bad input
    (InputError), an unreachable endpoint or any other AWS failure an AwsError saying what was being done."""
    import botocore.exceptions as bex

    from ..errors import AwsError, first_line
    from .remote_state import aws_error

    try:
        yield
    except (bex.NoCredentialsError, bex.PartialCredentialsError):
        raise InputError("no AWS credentials: pass --profile, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except bex.ClientError as exc:
        raise aws_error(exc, what) from None
    except (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError) as exc:
        raise AwsError(f"{what}: cannot reach AWS ({first_line(exc)}); check the network or AWS_ENDPOINT_URL") from None
    except bex.BotoCoreError as exc:
        raise AwsError(f"{what}: {first_line(exc)}") from None
