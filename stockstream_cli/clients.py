"""One way to make a boto3 session, for every AWS access (the store's S3 and the deployer's): the standard
credential chain, a profile, a region.

boto3 itself honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) for every client. Every client made
from the session retries in botocore's "standard" mode (throttling and transient errors, with backoff).
"""

from __future__ import annotations

from .errors import InputError


def boto3_session(*, profile: str | None = None, region: str | None = None):
    """A session in `region`, else AWS_REGION (which the AWS CLI and SDKs honour but botocore's own chain does
    not), else AWS_DEFAULT_REGION or the profile's."""
    import os

    import boto3
    import botocore.exceptions
    import botocore.session

    try:
        core = botocore.session.Session(profile=profile)
        core.set_default_client_config(client_config())
        return boto3.session.Session(region_name=region or os.environ.get("AWS_REGION") or None, botocore_session=core)
    except botocore.exceptions.ProfileNotFound:
        raise InputError(f"{profile!r}: no such AWS profile in your AWS config", parameter="profile") from None


def client_config():
    """The botocore Config every stockstream client gets."""
    from botocore.config import Config

    return Config(retries={"mode": "standard"})


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
