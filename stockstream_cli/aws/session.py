"""One way to make a boto3 session: the standard credential chain, --profile, --region.

boto3 itself honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) for every client.
"""

from __future__ import annotations

from ..errors import InputError


def boto3_session(*, profile: str | None = None, region: str | None = None):
    import boto3
    import botocore.exceptions

    try:
        return boto3.session.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound:
        raise InputError(f"--profile {profile!r}: no such AWS profile in your AWS config") from None
