"""The S3 scenario of benchmarks/ingest.py: the loader from object storage against
downloading the same objects to nowhere.

A local moto server (the tests' S3 server, `moto[server]`) holds the same feed
as the disk benchmark. Side by side, in rounds, best of each kept:

- the floor: the same objects downloaded with the same client (boto3, one
  client per process, as the loader's workers have), by the same number of
  processes, each object read in the same 1 MB blocks and thrown away;
- the loader: `load_raw.py --log-data s3://...` (or `--song-data`), run as a
  user runs it, listing, planning, hashing and COPY included, into raw;
- listing: the song_data prefix (20k keys by default) listed page by page.

Both sides pay moto's own cost per request and per byte, on the same machine:
the ratio says what loading adds on top of reading. It is not a figure for AWS,
whose latency per request is higher (which more workers hide).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

from benchmarks.feed import Feed
from benchmarks.loader_rounds import run_loader
from benchmarks.measuring import Recorder, log

BUCKET = "bench"
BLOCK = 1024 * 1024
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
}


class MotoServer:
    """moto's standalone server on 127.0.0.1, on a free port, for one benchmark run."""

    def __init__(self, log: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "moto_server"),
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"bench: moto_server did not start (see {log})") from None
                time.sleep(0.1)

    def env(self, base: dict[str, str]) -> dict[str, str]:
        clean = {key: value for key, value in base.items() if not key.startswith("AWS_")}
        return {**clean, **CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a busy moto holding many objects
                self.process.kill()
                self.process.wait(timeout=10)


def client(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_REGION"],
    )


def upload(endpoint: str, files: list[tuple[str, Path]], threads: int = 8) -> None:
    """Put (key, path) pairs into the bucket, made if missing."""
    s3 = client(endpoint)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)

    def put(item: tuple[str, Path]) -> None:
        s3.put_object(Bucket=BUCKET, Key=item[0], Body=item[1].read_bytes())

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, files))


def list_keys(endpoint: str, prefix: str) -> tuple[list[str], float]:
    """Every key under prefix, and the seconds the listing took."""
    s3 = client(endpoint)
    started = time.perf_counter()
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for item in page.get("Contents", ())
    ]
    return keys, time.perf_counter() - started


def _download(job: tuple[str, list[str]]) -> int:
    """One process's share: each object read in blocks, to nowhere."""
    endpoint, keys = job
    s3 = client(endpoint)
    read = 0
    for key in keys:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        while block := body.read(BLOCK):
            read += len(block)
        body.close()
    return read


def _default_signals() -> None:
    """A pool process ends quietly when the pool is closed (SIGTERM), not with
    the benchmark's own handler's traceback."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def download(endpoint: str, keys: list[str], processes: int) -> int:
    """The floor: `processes` processes share the keys (interleaved) and read
    them all; returns the bytes read. Timed by the caller, start-up included, as
    the loader's workers are."""
    shares = [(endpoint, keys[i::processes]) for i in range(processes)]
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with context.Pool(processes, initializer=_default_signals) as pool:
        return sum(pool.map(_download, shares))


def run(
    recorder: Recorder,
    feed: Feed,
    env: dict[str, str],
    workers: int,
    repeat: int,
    *,
    also_from_disk: bool,
    moto_log: Path,
) -> None:
    """The loader from a local moto server, beside downloading the same objects
    to nowhere with the same client and parallelism: one warm-up round, then
    `repeat` rounds. With also_from_disk, the loader from the feed's folders too
    (when the disk rounds do not run)."""
    moto = MotoServer(moto_log)
    try:
        files = [(f"feed/{name}", path) for name, path, _ in feed.event_files + feed.song_files]
        log(f"S3: uploading {len(files):,} objects to moto at {moto.endpoint}")
        upload(moto.endpoint, files)
        for attempt in range(4):  # the first warms moto up: not kept
            keys, seconds = list_keys(moto.endpoint, "feed/song_data/")
            if attempt:
                with recorder.timed(f"S3 listing of {len(keys):,} keys (boto3)", "s3") as m:
                    pass
                m.seconds, m.files = seconds, len(keys)
            log(f"S3 listing: {len(keys):,} keys in {seconds:.2f} s")
        if len(keys) != len(feed.song_files):
            raise SystemExit(f"bench: listed {len(keys)} song objects, not {len(feed.song_files)}")
        for round_number in range(repeat + 1):
            recorder.warming = round_number == 0
            log("S3 warm-up round (not kept)" if recorder.warming else f"S3 round {round_number}")
            for kind, prefix in (("events", "log_data"), ("songs", "song_data")):
                keys, _ = list_keys(moto.endpoint, f"feed/{prefix}/")
                log(f"S3 download to nowhere, {workers} processes, {kind}")
                name = f"S3 download to nowhere (boto3), {workers} processes"
                with recorder.timed(name, kind) as m:
                    m.bytes = download(moto.endpoint, keys, workers)
                m.files = len(keys)
                m.lines = feed.event_lines if kind == "events" else len(keys)
                s3_prefix = f"s3://{BUCKET}/feed"
                run_loader(recorder, feed, moto.env(env), kind, workers, s3_prefix=s3_prefix)
                if also_from_disk:  # the same loader from disk, side by side
                    run_loader(recorder, feed, env, kind, workers)
        recorder.warming = False
    finally:
        moto.stop()
