"""Where stockstream keeps its files: a local folder or S3, behind one small interface.

Keys are '/'-separated paths relative to the store's root (see layout.py). Every put is atomic:
locally a temporary file in the same folder renamed over the target, on S3 a single PutObject.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from ..errors import (UNHEALABLE_ERRNOS, InputError, KeyNotFound, StoreError, StoreNotAFolder, StoreUnusable,
                     StoreWithoutCredentials, VersionChanged, aws_error_code, first_line, is_dns_failure,
                     is_unreachable, os_error_kind, unreachable_message)


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner alone; a stored file should get the usual mode, as open() gives.
_FILE_MODE = 0o666 & ~_process_umask()


def write_atomically(path: Path, content: bytes | Callable[[IO[bytes]], object]) -> None:
    """Write `content` (bytes, or a function writing to a binary file) to a temporary file in path's folder,
    flushed to disk, then renamed over path: a reader sees the old file or the new one, never half of one.
    The file gets the usual mode (0666 less the umask), as open() would give it. OSError on failure, with
    nothing left behind; the folder must exist."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            if isinstance(content, (bytes, bytearray, memoryview)):
                handle.write(content)
            else:
                content(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Store(Protocol):
    uri: str

    def get(self, key: str) -> bytes: ...

    def put(self, key: str, data: bytes) -> None: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]: ...

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        """The keys `list` gives, each with a version token that changes whenever its content can have
        changed; one listing, no request per key."""
        ...

    def read_tail(self, key: str, size: int) -> bytes:
        """The last `size` bytes of the key's content (all of it when it is shorter)."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_version(self, key: str, version: str) -> bool:
        """Delete the key only while its content is still the version `list_versions` gave (a compare-and-
        delete): True when deleted; False, and nothing changed, when it was rewritten or is gone."""
        ...

    def polars_path(self, key: str) -> str:
        """A path or URL polars can scan for this key."""
        ...

    def polars_storage_options(self) -> dict[str, str] | None: ...

    def polars_credential_provider(self):
        """What polars' scans take as credential_provider (None: no cloud credentials)."""
        ...


def open_store(uri: str, *, profile: str | None = None, region: str | None = None) -> Store:
    """A store from a URI: `s3://bucket[/prefix]` or a local folder (created on first write)."""
    if not uri or not uri.strip():
        raise InputError("is empty: give a folder or s3://bucket[/prefix]", parameter="store")
    if uri.startswith("s3://"):
        return S3Store(uri, profile=profile, region=region)
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise InputError(f"{uri!r}: unknown scheme {scheme!r}; use a local folder or s3://bucket[/prefix]",
                         parameter="store")
    return LocalStore(uri)


def store_of(settings, *, must_exist: bool = False) -> Store:
    """The store `settings` names, with their AWS profile and region. must_exist: for readers, InputError
    naming the store when it is not there (require_exists); writers create it."""
    store = open_store(settings.store, profile=settings.profile, region=settings.region)
    return require_exists(store) if must_exist else store


def require_exists(store: "Store") -> "Store":
    """The store, when there is one to read: InputError naming it when a local store is missing or not a
    folder (a mistyped path reads as an empty store otherwise). S3 stores are checked by their first read."""
    if isinstance(store, LocalStore) and not store.root.is_dir():
        what = "is not a folder" if store.root.exists() else "does not exist"
        from .. import hints

        hint = f"check the path; `{hints.command('run-local')}` creates it"
        if store.uri.startswith("s3:") and not store.uri.startswith("s3://"):
            hint = f"did you mean s3://{store.uri[3:].lstrip('/')} ?"
        raise InputError(f"the store {store.uri} {what}: {hint}")
    return store


class LocalStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.uri = str(root)

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid store key {key!r}")
        return self.root / key

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(key, self.uri) from None
        except OSError as exc:
            raise StoreError(f"cannot read {self._path(key)}: {exc.strerror}") from None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, data)
        except OSError as exc:
            raise local_write_error(exc, self.root, path) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root / folder
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        """Keys as `list` gives them, each with "size-mtime_ns-inode": a put renames a new file over the key,
        so its inode and modification time change even when its size does not."""
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        versions = {}
        for key, status in _walk_files(self.root, folder):
            if key.startswith(prefix):
                versions[key] = _local_version(status)
        return dict(sorted(versions.items()))

    def delete_version(self, key: str, version: str) -> bool:
        """The file is first renamed aside (atomic: a writer's rename over the key now lands beside it), then
        checked: the version read is unlinked; any other (a put that came in between) is linked back, unless
        a still newer put holds the key already, which then wins as the later write."""
        path = self._path(key)
        try:
            if _local_version(path.stat()) != version:
                return False
            aside = path.with_name(f".{path.name}.{os.getpid()}.deleting")
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(f"cannot delete {path}: {exc.strerror}") from None
        if _local_version(aside.stat()) == version:
            aside.unlink()
            return True
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        aside.unlink()
        return False

    def read_tail(self, key: str, size: int) -> bytes:
        path = self._path(key)
        try:
            with path.open("rb") as handle:
                length = handle.seek(0, os.SEEK_END)
                handle.seek(max(length - size, 0))
                return handle.read()
        except FileNotFoundError:
            raise KeyNotFound(key, self.uri) from None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def polars_path(self, key: str) -> str:
        return str(self._path(key))

    def polars_storage_options(self) -> dict[str, str] | None:
        return None

    def polars_credential_provider(self):
        return None


def _local_version(status: os.stat_result) -> str:
    return f"{status.st_size}-{status.st_mtime_ns}-{status.st_ino}"


def _walk_files(root: Path, folder: str):
    """(key, stat) of every file under root/folder, as LocalStore.list sees them: names starting with a dot
    are left out, symlinked folders are not followed, a file removed while walking is skipped."""
    pending = [(os.path.join(root, folder) if folder else os.fspath(root), f"{folder}/" if folder else "")]
    while pending:
        path, key_prefix = pending.pop()
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue  # as `list` (pathlib's rglob) skips a folder it cannot read
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append((entry.path, f"{key_prefix}{entry.name}/"))
            elif not entry.name.startswith("."):
                try:
                    status = entry.stat()
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(status.st_mode):
                    yield key_prefix + entry.name, status


S3_CONNECTIONS = 32  # requests at once on S3: the client's connection pool, and how many files the readers fetch at once


@dataclasses.dataclass(frozen=True)
class Suffix:
    """The end of an object (S3Store.read_suffix): its last bytes, its whole size, its ETag."""

    data: bytes
    size: int
    etag: str


class S3Store:
    def __init__(self, uri: str, *, profile: str | None = None, region: str | None = None):
        rest = uri[len("s3://"):].strip("/")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise InputError(f"{uri!r} names no bucket: use s3://bucket[/prefix]", parameter="store")
        self.uri = uri
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._profile = profile
        self._region = region
        self._client = None
        self._session = None

    @property
    def session(self):
        if self._session is None:
            from ..clients import boto3_session

            self._session = boto3_session(profile=self._profile, region=self._region)
        return self._session

    @property
    def client(self):
        if self._client is None:
            from ..clients import client_config, expect_bucket_owner

            # STOCKSTREAM_BUCKET_OWNER, if set, goes on every call as ExpectedBucketOwner
            from botocore.config import Config

            config = client_config().merge(Config(max_pool_connections=S3_CONNECTIONS))
            self._client = expect_bucket_owner(self.session.client("s3", config=config))
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + key

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:
            if aws_error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                raise KeyNotFound(key, self.uri) from None
            raise _store_error(exc, f"cannot read s3://{self.bucket}/{self._key(key)}") from None

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise _store_error(exc, f"cannot write s3://{self.bucket}/{self._key(key)}") from None

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except Exception as exc:
            if aws_error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return False
            raise _store_error(exc, f"cannot read s3://{self.bucket}/{self._key(key)}") from None

    def list(self, prefix: str = "") -> list[str]:
        keys = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys.extend(obj["Key"][len(self.prefix):] for obj in page.get("Contents", []))
        except Exception as exc:
            raise _store_error(exc, f"cannot list s3://{self.bucket}/{self._key(prefix)}") from None
        return sorted(keys)

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        """Keys as `list` gives them, each with "ETag-Size" from the same listing (a new put, a new ETag)."""
        versions = {}
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for obj in page.get("Contents", []):
                    versions[obj["Key"][len(self.prefix):]] = f"{obj['ETag']}-{obj['Size']}"
        except Exception as exc:
            raise _store_error(exc, f"cannot list s3://{self.bucket}/{self._key(prefix)}") from None
        return dict(sorted(versions.items()))

    def read_tail(self, key: str, size: int) -> bytes:
        """One ranged GET (a suffix range: S3 answers with the whole object when it is shorter)."""
        return self.read_suffix(key, size).data

    def read_suffix(self, key: str, size: int) -> "Suffix":
        """The last `size` bytes (all when shorter), with the object's whole size and ETag: one suffix GET."""
        response = self._ranged_get(key, f"bytes=-{size}")
        data = response["Body"].read()
        total = response.get("ContentRange", "").rpartition("/")[2]
        return Suffix(data, int(total) if total.isdigit() else len(data), response.get("ETag", ""))

    def read_range(self, key: str, start: int, stop: int, *, etag: str) -> bytes:
        """Bytes [start, stop) of the key while it is still the object of that ETag (If-Match): VersionChanged
        when it was rewritten since, so bytes of two versions are never put together."""
        return self._ranged_get(key, f"bytes={start}-{stop - 1}", IfMatch=etag)["Body"].read()

    def _ranged_get(self, key: str, byte_range: str, **conditions):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=byte_range, **conditions)
        except Exception as exc:
            code = aws_error_code(exc)
            if code in {"NoSuchKey", "404", "NotFound"}:
                raise KeyNotFound(key, self.uri) from None
            if code in {"PreconditionFailed", "412"}:
                raise VersionChanged(f"s3://{self.bucket}/{self._key(key)} was rewritten while it was read") from None
            raise _store_error(exc, f"cannot read s3://{self.bucket}/{self._key(key)}") from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise _store_error(exc, f"cannot delete s3://{self.bucket}/{self._key(key)}") from None

    def delete_version(self, key: str, version: str) -> bool:
        """A conditional DeleteObject (If-Match the listed ETag): S3 refuses it with 412 when the object was
        rewritten since; 404 when it is gone."""
        etag = version.rsplit("-", 1)[0]
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key), IfMatch=etag)
            return True
        except Exception as exc:
            if aws_error_code(exc) in {"PreconditionFailed", "412", "NoSuchKey", "404", "NotFound"}:
                return False
            raise _store_error(exc, f"cannot delete s3://{self.bucket}/{self._key(key)}") from None

    def polars_path(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def polars_storage_options(self) -> dict[str, str] | None:
        """Region and endpoint as boto3 sees them, so polars reads where boto3 writes. No keys: those come from
        `polars_credential_provider`, which refreshes them when they expire."""
        options: dict[str, str] = {}
        region = self.session.region_name or self.client.meta.region_name
        if region:
            options["aws_region"] = region
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["aws_endpoint_url"] = endpoint
            if endpoint.startswith("http://"):
                options["aws_allow_http"] = "true"
        return options

    def polars_credential_provider(self):
        """polars' AWS provider over the same profile and region: boto3's credential chain, asked again
        whenever the credentials it gave are about to expire."""
        import polars as pl

        return pl.CredentialProviderAWS(profile_name=self._profile,
                                        region_name=self.session.region_name or self.client.meta.region_name)


def local_write_error(exc: OSError, root: Path, path: Path) -> StoreError:
    """A local write's OSError, classified: a store path that is (under) a file is bad input; permission
    denied, a full disk, a read-only file system cannot heal; anything else may (StoreError)."""
    kind = os_error_kind(exc)
    if kind == "not_a_folder":
        return StoreNotAFolder(f"{root}: {_file_in_the_way(root)} is a file, not a folder; "
                               "give a folder (it is created when missing)", parameter="store")
    if kind == "unusable":
        return StoreUnusable(f"cannot write {path}: {UNHEALABLE_ERRNOS[errno.errorcode[exc.errno]]} "
                             f"({exc.strerror})")
    return StoreError(f"cannot write {path}: {exc.strerror}")


def _file_in_the_way(root: Path) -> Path:
    for candidate in [root, *root.parents]:
        if candidate.is_file():
            return candidate
    return root


def _store_error(exc: Exception, what: str) -> StoreError:
    code = aws_error_code(exc)
    if code == "NoSuchBucket":
        return StoreUnusable(f"{what}: the bucket does not exist (create it, or run `stockstream deploy`)")
    if code in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        return StoreUnusable(f"{what}: access denied ({code}); check your AWS credentials and the bucket policy")
    if is_dns_failure(exc):
        return StoreUnusable(f"{what}: no such host ({first_line(exc)}); check the endpoint and the network")
    if type(exc).__name__ in {"NoCredentialsError", "PartialCredentialsError"}:
        return StoreWithoutCredentials()
    if is_unreachable(exc):
        return StoreError(f"{what}: {unreachable_message(exc)}")
    return StoreError(f"{what}: {exc}")
