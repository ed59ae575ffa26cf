"""A real S3 API server for the tests: moto's standalone server, on 127.0.0.1.

Each server runs on a free port, as its own process, and is stopped when its
fixture ends. The loader reaches it as it would reach AWS or MinIO: through
AWS_ENDPOINT_URL and the standard credential variables.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from fault_proxy import FaultProxy
from helpers import free_port

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
# Any key works on moto without auth; on AWS these would come from the user's chain.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}
# Tests of failures should not wait through the loader's default store timeout
# (120 s): they pass this instead.
QUICK_TIMEOUT = ("--store-timeout", "3")


@dataclass
class MotoServer:
    endpoint: str
    port: int
    process: subprocess.Popen
    log: Path

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """base, pointed at this server (no AWS_* variable of the caller's leaks in)."""
        clean = {key: value for key, value in base.items() if not key.startswith("AWS_")}
        return {**clean, **CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def requests(self) -> list[str]:
        """The request lines the server has logged so far ("GET /bucket/key ...")."""
        return [
            line.split('"')[1]
            for line in self.log.read_text(errors="replace").splitlines()
            if line.count('"') >= 2 and " HTTP/" in line
        ]


def start_moto(log: Path, port: int | None = None, **env: str) -> MotoServer:
    """Start moto's server and wait until it answers (a few seconds at most)."""
    port = port or free_port()
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )
    server = MotoServer(f"http://127.0.0.1:{port}", port, process, log)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(
                    f"moto_server did not start: {log.read_text()[-2000:]}"
                ) from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server for the session's S3 tests; each test uses a bucket of its own."""
    server = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    """A new, empty bucket on the session's server."""
    name = f"feed-{uuid.uuid4().hex[:12]}"
    moto.client().create_bucket(Bucket=name)
    return name


def upload_feed(
    client, bucket: str, feed: Path, prefix: str, *, gzipped: tuple[str, ...] = ()
) -> list[str]:
    """Put every file of a local feed (not the generator's _truth/ and _faults.json)
    under s3://bucket/prefix/, keyed by its path; the files named in `gzipped` go
    compressed, as NAME.gz. Returns the keys."""

    def put(path: Path) -> str:
        relative = path.relative_to(feed).as_posix()
        body = path.read_bytes()
        if relative in gzipped:
            body, relative = gzip.compress(body), f"{relative}.gz"
        key = f"{prefix}/{relative}" if prefix else relative
        client.put_object(Bucket=bucket, Key=key, Body=body)
        return key

    paths = [
        path
        for path in sorted(feed.rglob("*"))
        if path.is_file() and not path.relative_to(feed).as_posix().startswith("_")
    ]
    with ThreadPoolExecutor(8) as pool:  # a boto3 client may be shared by threads
        return list(pool.map(put, paths))


@pytest.fixture(scope="session")
def moto_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto server that checks credentials (its IAM knows no key at all), so
    every request is refused as a wrong key would be on AWS."""
    server = start_moto(
        tmp_path_factory.mktemp("moto-auth") / "moto.log", INITIAL_NO_AUTH_ACTION_COUNT="0"
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    """A proxy in front of the session's moto server, with no rule yet."""
    with FaultProxy(moto.endpoint, moto.client()) as running:
        yield running
