"""One way to make a boto3 session: the standard credential chain, --profile, --region.

boto3 itself honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) for every client. Every client made
from the session retries in botocore's "standard" mode (throttling and transient errors, with backoff).
"""

from __future__ import annotations

from ..errors import InputError


def boto3_session(*, profile: str | None = None, region: str | None = None):
    import boto3
    import botocore.exceptions
    import botocore.session

    try:
        core = botocore.session.Session(profile=profile)
        core.set_default_client_config(client_config())
        return boto3.session.Session(region_name=region, botocore_session=core)
    except botocore.exceptions.ProfileNotFound:
        raise InputError(f"--profile {profile!r}: no such AWS profile in your AWS config") from None


def client_config():
    """The botocore Config every stockstream client gets."""
    from botocore.config import Config

    return Config(retries={"mode": "standard"})
