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


BUCKET_OWNER_ENV = "STOCKSTREAM_BUCKET_OWNER"


def expect_bucket_owner(client, owner: str | None = None):
    """Every call of this S3 client that can carry ExpectedBucketOwner carries it: S3 then refuses a bucket
    another account owns (403) instead of reading or writing someone else's data. The owner: `owner`, or
    STOCKSTREAM_BUCKET_OWNER (deploy sets it on the functions to the deploying account); neither: unchanged."""
    import os

    owner = owner or os.environ.get(BUCKET_OWNER_ENV)
    if not owner:
        return client

    def add_owner(params, model, **_):
        if "ExpectedBucketOwner" in model.input_shape.members and "ExpectedBucketOwner" not in params:
            params["ExpectedBucketOwner"] = owner

    client.meta.events.register("before-parameter-build.s3", add_owner)
    return client
