"""The feed in object storage (S3 or any S3-compatible store), as a `FileSource`.

`s3://bucket/prefix/song_data` is listed like a local folder: each object is a
file, named `song_data/<key under the prefix>` as a local file would be (the key
exactly as listed, whatever slashes it holds), so the rest of the loader is the
same for both. Objects are streamed from the store into COPY; nothing is
written to disk. Small objects of a batch are fetched ahead, many at once
(read_ahead.py, --s3-in-flight), so that the store's wait before each first
byte is not paid one object after another.

Credentials, region and endpoint come from the standard AWS chain that boto3
reads: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE
(~/.aws/credentials, ~/.aws/config), AWS_REGION, AWS_ENDPOINT_URL or
AWS_ENDPOINT_URL_S3 (MinIO, Ceph, R2, a local moto server). None of them is
ever an argument, and none is ever put in a message.

Failures: one retry policy, `patiently`, for failed requests, broken streams
and silence alike (botocore's own retries are off, so that they do not stack):
what may pass (throttling, 5xx, a reset, a timeout) is tried again with backoff
doubling from FIRST_BACKOFF to MAX_BACKOFF, until it has failed for the store
timeout (--store-timeout); a broken stream resumes with a Range request at the
byte it reached. An object that is gone or archived is a `SkippedFile`. What is
still failing becomes an `ObjectStoreError`: one line, a kind that cli.py turns
into an exit code, never a secret.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import botocore.exceptions

from sparkify.loader.contract import FEED_FOLDERS
from sparkify.loader.files import (
    SkippedFile,
    SourceError,
    SourceFile,
    _NamedErrors,
    is_data_file,
    sha256_of,
    whole_listing,
)
from sparkify.loader.read_ahead import ReadAhead
from sparkify.messages import one_line

# botocore says at INFO where it found the credentials: noise in every worker.
logging.getLogger("botocore").setLevel(logging.WARNING)
log = logging.getLogger("load_raw")

SCHEME = "s3://"
DEFAULT_STORE_TIMEOUT = 120.0  # seconds a request or a stream may keep failing
# No answer for this long (to connect, or to a read) counts as a failure, said
# and tried again: a store's silence shows in seconds, not minutes.
SILENCE_SECONDS = 5.0
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 10.0
# GETs in flight at once, across all workers (--s3-in-flight): enough to hide
# tens of milliseconds before each first byte behind one another (measured by
# make bench-latency: from a store 30 ms away, 64 reach about 0.8 of the same
# GETs made alone, 32 about 0.7).
DEFAULT_IN_FLIGHT = 64
# An object up to this size is fetched whole, ahead of its turn (a song file, a
# day of events); a bigger one is streamed in its turn. With the requests in
# flight, it bounds the memory held by what was fetched and not yet loaded.
WHOLE_OBJECT_BYTES = 1024 * 1024
# A fetched-ahead object is read off the connection in blocks of this size, so
# that a broken connection resumes (Range) at the byte it reached.
FETCH_BLOCK_BYTES = 64 * 1024

# The kinds of failure, each its own exit code (cli.py).
UNREACHABLE = "store_unreachable"  # no answer (endpoint down, DNS, not S3, timeout used up)
DENIED = "store_denied"  # wrong or missing credentials, or no permission
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
# Worth another try: the store is busy or briefly failing (any 5xx is, too).
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "TooManyRequests",
    "RequestLimitExceeded",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
}

T = TypeVar("T")


class ObjectStoreError(SourceError):
    """The store could not be read: one line for the user, and its kind.

    An OSError, so that a worker reports it as a file it could not read, and
    its batch rolls back like any other read failure."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[type[ObjectStoreError], tuple[str, str]]:
        return ObjectStoreError, (self.kind, str(self))


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


def make_client(timeout: float = DEFAULT_STORE_TIMEOUT, connections: int = 16) -> Any:
    """An S3 client from the standard AWS variables and files.

    boto3 reads AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL itself (botocore 1.31+).
    botocore tries each request once (its own retries, and AWS_MAX_ATTEMPTS and
    AWS_RETRY_MODE, would stack under `patiently`'s); a silence of
    SILENCE_SECONDS is a failure, which `patiently` says and tries again (a slow
    big object is not cut off: the limit is per read, not per object).
    `connections`: the pool's size, one per request in flight."""
    # Imported here: boto3 and botocore's config take 0.1-0.3 s to import,
    # which a load from local folders never needs.
    import boto3
    import botocore.session
    from botocore.config import Config

    silence = min(SILENCE_SECONDS, timeout)
    config = Config(
        retries={"total_max_attempts": 1},
        connect_timeout=silence,
        read_timeout=silence,
        max_pool_connections=connections,
    )
    try:
        # A new session per client (each reads the AWS variables afresh), sharing
        # one loader of botocore's data: the S3 model is parsed once per
        # process tree, not once per worker (0.1-0.2 s of CPU each).
        session = botocore.session.get_session()
        session.register_component("data_loader", _data_loader())
        return boto3.session.Session(botocore_session=session).client("s3", config=config)
    except botocore.exceptions.BotoCoreError as exc:  # e.g. AWS_PROFILE names no profile
        raise ObjectStoreError(DENIED, f"cannot set up the S3 client: {exc}") from None
    except ValueError as exc:  # botocore's word for an endpoint that is not a URL
        raise ObjectStoreError(
            UNREACHABLE, f"cannot set up the S3 client: {exc} (AWS_ENDPOINT_URL must be a URL)"
        ) from None


@functools.cache
def _data_loader() -> Any:
    """botocore's loader of its data files (service models, endpoints), made
    once: its cache of what it parsed is shared by every client made after."""
    import botocore.loaders

    return botocore.loaders.create_loader()


# What a failed request or a broken stream raises: botocore's errors, and the
# socket's (urllib3's errors are wrapped by botocore, or are OSErrors).
_STORE_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError)


def patiently(what: str, attempt: Callable[[], T], timeout: float) -> T:
    """attempt(), tried again while it fails in a way that may pass (throttling,
    a 5xx, a reset or silent connection), with backoff doubling from
    FIRST_BACKOFF to MAX_BACKOFF, until `timeout` seconds after the start of its
    first failed try; each wait is said in one line. Any other failure, or one
    that outlasts the timeout, is an ObjectStoreError; a SourceError (e.g. a
    SkippedFile) passes as it is. The loader's one retry policy."""
    delay = FIRST_BACKOFF
    deadline: float | None = None
    while True:
        began = time.monotonic()
        try:
            return attempt()
        except SourceError:
            raise
        except _STORE_ERRORS as exc:
            if not _transient(exc):
                raise describe(exc, what) from None
            deadline = deadline or began + timeout
            now = time.monotonic()
            if now >= deadline:
                raise describe(exc, what, failing_for=now - deadline + timeout) from None
            wait = min(delay, deadline - now)  # the last try comes at the deadline
            log.warning(
                "waiting for the store: %s: %s; trying again in %.1f s "
                "(gives up after %.0f s of failures: --store-timeout)",
                what,
                _said(exc),
                wait,
                timeout,
            )
            time.sleep(wait)
            delay = min(2 * delay, MAX_BACKOFF)


def _transient(exc: Exception) -> bool:
    if isinstance(exc, botocore.exceptions.ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 or status == 429 or _code(exc) in _TRANSIENT_CODES
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return isinstance(
            exc,
            (
                botocore.exceptions.HTTPClientError,  # reset, closed, read timeout, broken stream
                botocore.exceptions.ConnectionError,  # cannot connect, connect timeout
                botocore.exceptions.IncompleteReadError,
            ),
        )
    return True  # a socket's OSError


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _said(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return (
            _code(exc) or f"HTTP {exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode')}"
        )
    return one_line(exc)


def describe(exc: Exception, what: str, failing_for: float | None = None) -> ObjectStoreError:
    """The store's failure as one line, without a secret (botocore's messages
    name the key id at most, never the secret key or the token)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = _code(exc)
        message = error.get("Message") or code
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return ObjectStoreError(NO_BUCKET, f"{what}: no such bucket ({code})")
        if code in _DENIED_CODES:
            return ObjectStoreError(
                DENIED,
                f"{what}: the store refused the credentials ({code}: {message}); check "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN or AWS_PROFILE",
            )
        if not code or code.isdigit():  # an HTTP status with no S3 error: not an S3 store
            return ObjectStoreError(
                UNREACHABLE,
                f"{what}: the endpoint answered HTTP {status} with no S3 error: it does "
                "not speak S3 or cannot be reached (check AWS_ENDPOINT_URL)",
            )
        if failing_for is None:
            return ObjectStoreError(UNREACHABLE, f"{what}: {code}: {message}")
        return ObjectStoreError(
            UNREACHABLE,
            f"{what}: {code}: {message} (still failing after {failing_for:.0f} s; "
            "re-run, or raise --store-timeout)",
        )
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return ObjectStoreError(
            DENIED,
            f"{what}: no AWS credentials (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)",
        )
    waited = "" if failing_for is None else f"still failing after {failing_for:.0f} s; "
    return ObjectStoreError(
        UNREACHABLE,
        f"{what}: {one_line(exc)} ({waited}check AWS_ENDPOINT_URL and the network, or "
        "raise --store-timeout, then re-run)",
    )


def _skip_reason(exc: botocore.exceptions.ClientError, resumed: bool) -> str | None:
    """Why an object that was listed cannot be read at all, if that is what
    the store says: then it is skipped and named, not a failure of the run."""
    code = _code(exc)
    if code == "NoSuchKey":
        when = "deleted while being read" if resumed else "gone from the store since it was listed"
        return f"{when} (NoSuchKey); the next run loads it if it is back"
    if code == "PreconditionFailed":
        return "rewritten while being read (its ETag changed); the next run loads the new version"
    if code == "InvalidObjectState":
        storage = exc.response.get("Error", {}).get("StorageClass") or "an archive"
        return (
            f"archived (InvalidObjectState, storage class {storage}): restore it "
            "(aws s3api restore-object), then re-run"
        )
    return None


class _ObjectStream:
    """An object's body, read in blocks straight off the connection.

    Each read is tried `patiently`: a connection that breaks mid-object is
    opened again with a Range request at the byte already read, and an If-Match
    on the ETag of the first answer, so that a rewritten object is never spliced
    (it is skipped instead, as is an object deleted meanwhile)."""

    def __init__(self, source: S3FileSource, source_file: SourceFile):
        self._client = source.client
        self._timeout = source.timeout
        self._name = source_file.name
        self._bucket, self._key = source.key_of(source_file)
        self._what = f"reading {SCHEME}{self._bucket}/{self._key}"
        self._body: Any = None
        self._etag = ""
        self._size: int | None = None
        self._position = 0
        patiently(self._what, self._open, self._timeout)  # a missing object: said now

    def _open(self) -> None:
        args = {"Bucket": self._bucket, "Key": self._key}
        if self._position:
            args |= {"Range": f"bytes={self._position}-", "IfMatch": self._etag}
        try:
            answer = self._client.get_object(**args)
        except botocore.exceptions.ClientError as exc:
            reason = _skip_reason(exc, resumed=self._position > 0)
            if reason is not None:
                raise SkippedFile(self._name, reason) from None
            raise
        if not self._position:
            self._etag, self._size = answer["ETag"], answer["ContentLength"]
        self._body = answer["Body"]

    @property
    def size(self) -> int:
        """The object's size, as its first answer said."""
        return self._size or 0

    def _read(self, size: int | None) -> bytes:
        if self._size is not None and self._position >= self._size:
            return b""
        if self._body is None:  # broke off: resume where it stopped
            self._open()
        try:
            block: bytes = self._body.read(size)
        except BaseException:
            self._drop()
            raise
        self._position += len(block)
        return block

    def read(self, size: int | None = -1) -> bytes:
        wanted = None if size is None or size < 0 else size
        return patiently(self._what, lambda: self._read(wanted), self._timeout)

    def _drop(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(*_STORE_ERRORS):
                body.close()

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> _ObjectStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class S3FileSource:
    """Objects under one prefix per kind, e.g. s3://bucket/feed/song_data.

    The client is made per process (on first use after a fork: a boto3 client's
    connection pool must not be shared with a forked worker). `timeout`: how
    long a request or a stream may keep failing (`patiently`). `in_flight`: the
    GETs this process keeps in flight while it loads a batch (read_ahead.py)."""

    def __init__(
        self,
        roots: dict[str, S3Location],
        timeout: float = DEFAULT_STORE_TIMEOUT,
        in_flight: int = DEFAULT_IN_FLIGHT,
    ):
        self.roots = roots
        self.timeout = timeout
        self.in_flight = in_flight
        self.unreadable: list[tuple[str, str]] = []
        self._client: Any = None
        self._pid = 0
        self._ahead = ReadAhead(self._fetch_whole, in_flight, WHOLE_OBJECT_BYTES)
        # The client made now, before workers are forked: they inherit boto3
        # imported and botocore's data parsed, and make their own client in
        # milliseconds. A failure to make it is said when it is first used.
        with contextlib.suppress(ObjectStoreError):
            _ = self.client

    def __getstate__(self) -> dict[str, Any]:  # spawned workers make their own client
        return {**self.__dict__, "_client": None, "_pid": 0, "_ahead": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._ahead = ReadAhead(self._fetch_whole, self.in_flight, WHOLE_OBJECT_BYTES)

    @property
    def client(self) -> Any:
        if self._client is None or self._pid != os.getpid():
            # One connection per request in flight, and one for a streamed object.
            connections = max(16, self.in_flight + 1)
            self._client, self._pid = make_client(self.timeout, connections), os.getpid()
        return self._client

    def reading_ahead(self, files: list[SourceFile]) -> AbstractContextManager[None]:
        """Fetch the small ones of these files ahead, many at once, while the
        block reads them in this order (read_ahead.py)."""
        _ = self.client  # made here, once: boto3 does not make clients safely in threads
        return self._ahead.window(files)

    def _fetch_whole(self, source_file: SourceFile) -> bytes | None:
        """A small object, read whole through the same stream (and so the same
        retries, resumes and skips) as an object read in its turn; None if it
        has grown past WHOLE_OBJECT_BYTES since it was listed (then it is
        streamed in its turn: memory stays bounded by what the store says now)."""
        blocks = []
        with _ObjectStream(self, source_file) as stream:
            if stream.size > WHOLE_OBJECT_BYTES:
                return None
            while block := stream.read(FETCH_BLOCK_BYTES):
                blocks.append(block)
        return b"".join(blocks)

    def feed_root(self, kind: str) -> str:
        return str(self.roots[kind])

    def list_files(self) -> tuple[list[SourceFile], list[str]]:
        return whole_listing(self.list_pages())

    def list_pages(self) -> Iterator[tuple[list[SourceFile], list[str]]]:
        """The listing as the store gives it: a page (at most 1,000 keys, in key
        order) at a time, kind after kind, each page `patiently`."""
        for kind, root in sorted(self.roots.items()):
            under = len(f"{root.prefix}/") if root.prefix else 0
            for objects in self.object_pages(root):
                files: list[SourceFile] = []
                skipped: list[str] = []
                for key, size, stamp, etag in objects:
                    relative = key[under:]  # exactly as listed: a '//' stays
                    if not relative:  # the prefix's own "folder" marker
                        continue
                    name = f"{FEED_FOLDERS[kind]}/{relative}"
                    if is_data_file(key):
                        files.append(SourceFile(kind, name, size, stamp, etag))
                    else:  # other keys, and "folder" markers under the prefix (`odd/`)
                        skipped.append(name)
                yield files, skipped

    def object_pages(self, root: S3Location) -> Iterator[list[tuple[str, int, int, str]]]:
        """(key, size, last-modified in ns, ETag) of the objects under root/, one
        list per page of the listing."""
        prefix = f"{root.prefix}/" if root.prefix else ""
        client = self.client  # outside `patiently`: its own errors are said already
        request: dict[str, str] = {"Bucket": root.bucket, "Prefix": prefix}
        while True:
            page = patiently(
                f"listing {root}",
                lambda: client.list_objects_v2(**request),
                self.timeout,
            )
            found = []
            for item in page.get("Contents", ()):
                modified = item["LastModified"]
                stamp = int(modified.timestamp()) * 10**9 + modified.microsecond * 1000
                found.append((item["Key"], item["Size"], stamp, item["ETag"].strip('"')))
            yield found
            if not page.get("IsTruncated"):
                return
            request["ContinuationToken"] = page["NextContinuationToken"]

    def key_of(self, source_file: SourceFile) -> tuple[str, str]:
        """The bucket and the exact key of a listed file."""
        root = self.roots[source_file.kind]
        relative = source_file.name[len(FEED_FOLDERS[source_file.kind]) + 1 :]
        return root.bucket, f"{root.prefix}/{relative}" if root.prefix else relative

    def open_stored(self, source_file: SourceFile) -> BinaryIO:
        fetched = self._ahead.take(source_file)  # its error, if it failed, is raised here
        if fetched is not None:
            return io.BytesIO(fetched)
        return _ObjectStream(self, source_file)  # type: ignore[return-value]

    def open(self, source_file: SourceFile) -> BinaryIO:
        stream = self.open_stored(source_file)
        if source_file.compressed:
            return _NamedErrors(gzip.GzipFile(fileobj=stream, mode="rb"), source_file.name)  # type: ignore[return-value]
        return stream

    def checksum(self, source_file: SourceFile) -> str:
        with self.open_stored(source_file) as stream:
            return sha256_of(stream)
