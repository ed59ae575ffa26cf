"""The feed in object storage (S3 or any S3-compatible store), as a `FileSource`.

`s3://bucket/prefix/song_data` is listed like a local folder: each object is a
file, named `song_data/<key under the prefix>` as a local file would be, so the
rest of the loader is the same for both. Objects are streamed from the store
into COPY; nothing is written to disk.

Credentials, region and endpoint come from the standard AWS chain that boto3
reads: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE
(~/.aws/credentials, ~/.aws/config), AWS_REGION, AWS_ENDPOINT_URL or
AWS_ENDPOINT_URL_S3 (MinIO, Ceph, R2, a local moto server). None of them is
ever an argument, and none is ever put in a message.

Failures: botocore retries throttling and transient network errors with
backoff ("standard" mode, AWS_MAX_ATTEMPTS attempts, 5 by default); what is
still failing after that becomes an `ObjectStoreError`: one line, a kind that
cli.py turns into an exit code, never a secret.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, cast

import boto3
import botocore.exceptions
from botocore.config import Config

from raw_loader.contract import FEED_FOLDERS
from raw_loader.files import READ_BLOCK_BYTES, SourceFile, _NamedErrors, is_data_file

# botocore says at INFO where it found the credentials: noise in every worker.
logging.getLogger("botocore").setLevel(logging.WARNING)

SCHEME = "s3://"
DEFAULT_MAX_ATTEMPTS = 5
_RetryMode = Literal["legacy", "standard", "adaptive"]

# The kinds of failure, each its own exit code (cli.py).
UNREACHABLE = "unreachable"  # no answer (endpoint down, DNS, retries used up)
DENIED = "denied"  # wrong or missing credentials, or no permission
NO_BUCKET = "no_bucket"

# Error codes the store answers with, by what they mean for the user.
_DENIED_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "ExpiredToken",
    "InvalidToken",
    "AuthorizationHeaderMalformed",
    "403",
}
_NO_BUCKET_CODES = {"NoSuchBucket", "404"}


class ObjectStoreError(OSError):
    """The store could not be read: one line for the user, and its kind.

    An OSError, so that a worker reports it as a file it could not read, and
    its batch rolls back like any other read failure."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # without a leading or trailing '/'; '' for the whole bucket

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}".rstrip("/")

    def child(self, name: str) -> S3Location:
        return S3Location(self.bucket, f"{self.prefix}/{name}".strip("/"))


def is_url(text: str) -> bool:
    return text.startswith(SCHEME)


def parse_url(text: str) -> S3Location:
    """`s3://bucket/some/prefix` -> its bucket and prefix; ValueError if it is none."""
    bucket, _, prefix = text[len(SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"not an s3://bucket/prefix URL: {text}")
    return S3Location(bucket, prefix.strip("/"))


def make_client() -> Any:
    """An S3 client from the standard AWS variables and files.

    boto3 reads AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL itself (botocore 1.31+).
    Timeouts are short to connect and generous to read: a stalled store is
    retried, a slow big object is not cut off."""
    config = Config(
        retries={
            # botocore checks the mode's value itself, as for any AWS tool.
            "mode": cast(_RetryMode, os.environ.get("AWS_RETRY_MODE") or "standard"),
            "max_attempts": _attempts(),
        },
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=16,
    )
    try:
        return boto3.session.Session().client("s3", config=config)
    except botocore.exceptions.BotoCoreError as exc:  # e.g. AWS_PROFILE names no profile
        raise ObjectStoreError(DENIED, f"cannot set up the S3 client: {exc}") from None
    except ValueError as exc:  # botocore's word for an endpoint that is not a URL
        raise ObjectStoreError(
            UNREACHABLE, f"cannot set up the S3 client: {exc} (AWS_ENDPOINT_URL must be a URL)"
        ) from None


def describe(exc: Exception, what: str) -> ObjectStoreError:
    """The store's failure as one line, without a secret (botocore's messages
    name the key id at most, never the secret key or the token)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message") or code
        if code in _NO_BUCKET_CODES:
            return ObjectStoreError(NO_BUCKET, f"{what}: no such bucket ({code})")
        if code in _DENIED_CODES:
            return ObjectStoreError(
                DENIED,
                f"{what}: the store refused the credentials ({code}: {message}); check "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN or AWS_PROFILE",
            )
        return ObjectStoreError(
            UNREACHABLE, f"{what}: {code}: {message} (still failing after {_attempts()} tries)"
        )
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return ObjectStoreError(
            DENIED,
            f"{what}: no AWS credentials (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)",
        )
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ObjectStoreError(
        UNREACHABLE,
        f"{what}: {first} (after {_attempts()} tries; check AWS_ENDPOINT_URL and the "
        "network, then re-run)",
    )


def _attempts() -> int:
    return int(os.environ.get("AWS_MAX_ATTEMPTS") or DEFAULT_MAX_ATTEMPTS)


# What a failed request or a broken stream raises: botocore's errors, and the
# socket's (urllib3's errors are wrapped by botocore, or are OSErrors).
_STORE_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError)


class _ObjectStream:
    """An object's body, read in blocks straight off the connection.

    A connection that drops mid-object raises an ObjectStoreError: the batch
    under way rolls back (no half-loaded file), and a re-run loads the object."""

    def __init__(self, body: Any, name: str):
        self._body = body
        self._name = name

    def read(self, size: int | None = -1) -> bytes:
        try:
            block: bytes = self._body.read(None if size is None or size < 0 else size)
            return block
        except _STORE_ERRORS as exc:
            raise describe(exc, f"reading {self._name} broke off") from None

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _ObjectStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class S3FileSource:
    """Objects under one prefix per kind, e.g. s3://bucket/feed/song_data.

    The client is made per process (on first use after a fork: a boto3 client's
    connection pool must not be shared with a forked worker)."""

    def __init__(self, roots: dict[str, S3Location]):
        self.roots = roots
        self.unreadable: list[tuple[str, str]] = []
        self._client: Any = None
        self._pid = 0

    def __getstate__(self) -> dict[str, Any]:  # spawned workers make their own client
        return {**self.__dict__, "_client": None, "_pid": 0}

    @property
    def client(self) -> Any:
        if self._client is None or self._pid != os.getpid():
            self._client, self._pid = make_client(), os.getpid()
        return self._client

    def feed_root(self, kind: str) -> str:
        return str(self.roots[kind])

    def list_files(self) -> tuple[list[SourceFile], list[str]]:
        files: list[SourceFile] = []
        skipped: list[str] = []
        for kind, root in sorted(self.roots.items()):
            for key, size, stamp, etag in self.list_objects(root):
                name = f"{FEED_FOLDERS[kind]}/{key[len(root.prefix) :].lstrip('/')}"
                if is_data_file(key):
                    files.append(SourceFile(kind, name, size, stamp, etag))
                else:
                    skipped.append(name)
        files.sort(key=lambda f: (f.kind, f.name))
        return files, sorted(skipped)

    def list_objects(self, root: S3Location) -> list[tuple[str, int, int, str]]:
        """(key, size, last-modified in ns, ETag) of every object under root/,
        page by page (a page holds at most 1,000 keys)."""
        prefix = f"{root.prefix}/" if root.prefix else ""
        found = []
        client = self.client  # outside the try: its own errors are said already
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=root.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    if item["Key"].endswith("/"):  # a "folder" marker, not a file
                        continue
                    modified = item["LastModified"]
                    stamp = int(modified.timestamp()) * 10**9 + modified.microsecond * 1000
                    found.append((item["Key"], item["Size"], stamp, item["ETag"].strip('"')))
        except _STORE_ERRORS as exc:
            raise describe(exc, f"cannot list {root}") from None
        return found

    def _key(self, source_file: SourceFile) -> tuple[str, str]:
        root = self.roots[source_file.kind]
        relative = source_file.name[len(FEED_FOLDERS[source_file.kind]) + 1 :]
        return root.bucket, f"{root.prefix}/{relative}" if root.prefix else relative

    def open_stored(self, source_file: SourceFile) -> BinaryIO:
        bucket, key = self._key(source_file)
        client = self.client
        try:
            answer = client.get_object(Bucket=bucket, Key=key)
        except _STORE_ERRORS as exc:
            raise describe(exc, f"cannot read {SCHEME}{bucket}/{key}") from None
        return _ObjectStream(answer["Body"], f"{SCHEME}{bucket}/{key}")  # type: ignore[return-value]

    def open(self, source_file: SourceFile) -> BinaryIO:
        stream = self.open_stored(source_file)
        if source_file.compressed:
            return _NamedErrors(gzip.GzipFile(fileobj=stream, mode="rb"), source_file.name)  # type: ignore[return-value]
        return stream

    def checksum(self, source_file: SourceFile) -> str:
        digest = hashlib.sha256()
        with self.open_stored(source_file) as stream:
            while block := stream.read(READ_BLOCK_BYTES):
                digest.update(block)
        return digest.hexdigest()
