"""Which S3 client for the loader: boto3, obstore and s3fs downloading the same objects.

Not part of `make bench`, and not of the project's environment: obstore and
s3fs are not dependencies (the current s3fs needs an older botocore than moto's
boto3). Run it in a throwaway virtualenv, against a moto server:

    python3 -m venv /tmp/clients && /tmp/clients/bin/pip install boto3==1.44.8 \\
        obstore==0.12.1 s3fs==2026.9.0 moto[server]==5.2.5
    /tmp/clients/bin/moto_server -H 127.0.0.1 -p 50123 &
    AWS_ENDPOINT_URL=http://127.0.0.1:50123 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \\
        AWS_REGION=us-east-1 /tmp/clients/bin/python benchmarks/s3_clients.py

It puts 2,000 small objects (3 kB, a song file) and 24 large ones (8 MB, a log
file) in a bucket, then reads each set twice with each client, 2 threads, each
object in 1 MB blocks to nowhere, and prints objects/s and MB/s.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import obstore
import s3fs
from obstore.store import S3Store

BUCKET = "clients"
BLOCK = 1 << 20
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]


def fill(s3: Any) -> None:  # a boto3 S3 client (boto3 has no type hints)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    small = b'{"a": 1}' * 400
    big = b'{"ts": 1541105830796, "song": "x"}\n' * 240_000
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: s3.put_object(Bucket=BUCKET, Key=f"small/{i:05d}.json", Body=small),
                range(2000),
            )
        )
        list(
            pool.map(
                lambda i: s3.put_object(Bucket=BUCKET, Key=f"big/{i:03d}.json", Body=big),
                range(24),
            )
        )


def keys(s3: Any, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", ())]


def measure(name: str, get: Callable[[str], int], names: list[str], prefix: str) -> None:
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        read = sum(pool.map(get, names))
    seconds = time.perf_counter() - started
    print(
        f"{name:8s} {prefix:6s} {len(names) / seconds:8.0f} objects/s "
        f"{read / seconds / 2**20:8.1f} MB/s",
        flush=True,
    )


def main() -> None:
    s3 = boto3.client("s3")
    fill(s3)
    store = S3Store(BUCKET, endpoint=ENDPOINT, allow_http=True, region="us-east-1")
    fs = s3fs.S3FileSystem(endpoint_url=ENDPOINT)

    def with_boto3(key: str) -> int:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        return sum(len(block) for block in iter(lambda: body.read(BLOCK), b""))

    def with_obstore(key: str) -> int:
        return sum(len(block) for block in obstore.get(store, key).stream(min_chunk_size=BLOCK))

    def with_s3fs(key: str) -> int:
        with fs.open(f"{BUCKET}/{key}", "rb", block_size=BLOCK) as stream:
            return sum(len(block) for block in iter(lambda: stream.read(BLOCK), b""))

    for prefix in ("small", "big"):
        names = keys(s3, f"{prefix}/")
        for _ in range(2):
            for name, get in (("boto3", with_boto3), ("obstore", with_obstore)):
                measure(name, get, names, prefix)
            measure("s3fs", with_s3fs, names, prefix)
    started = time.perf_counter()
    keys(s3, "small/")
    print(f"listing 2,000 keys with boto3: {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main()
