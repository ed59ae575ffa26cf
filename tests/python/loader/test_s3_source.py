"""The feed from object storage: the real loader against a real S3 API server (moto's).

A generated feed with faults goes into a bucket; the loader reads it through
AWS_ENDPOINT_URL exactly as it would read AWS, and what lands is compared with
the same feed loaded from disk. Failures (a stopped server, wrong credentials,
a missing bucket, no server at all) must each be one line and an exit code.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from helpers import (
    MARTS,
    UDACITY_SAMPLE,
    assert_loads_match,
    build,
    connect,
    free_port,
    generate_feed,
    landed,
    run_loader,
    scalar,
    warehouse_fingerprint,
)
from s3_server import (
    QUICK_TIMEOUT,
    start_moto,
    upload_feed,
)

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt, the S3 server

# More song files than one listing page holds (1,000 keys).
SONGS = 1100
FIRST_DAY = "log_data/2018/11/2018-11-01-events.json"

# Exit codes of src/sparkify/loader/cli.py.
EXIT_USAGE, EXIT_UNREACHABLE, EXIT_DENIED, EXIT_NO_BUCKET = 2, 4, 5, 6


@pytest.fixture(scope="module")
def faulty_feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated feed with faults, SONGS song files, and its first day gzipped
    (as .json.gz, on disk as in the bucket)."""
    feed = tmp_path_factory.mktemp("s3feed") / "feed"
    generate_feed(feed, "--days", "3", "--songs", str(SONGS), "--faults")
    day = feed / FIRST_DAY
    Path(f"{day}.gz").write_bytes(gzip.compress(day.read_bytes()))
    day.unlink()
    return feed


def load(env: dict[str, str], *args: str | Path) -> dict:
    result = run_loader(env, "--json", *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_s3_feed_lands_exactly_once_like_the_same_feed_on_disk(
    moto,
    bucket,
    faulty_feed,
    db_env,
    other_db_env,
):
    client = moto.client()
    keys = upload_feed(client, bucket, faulty_feed, "feed")
    env = moto.env(db_env)
    url = f"s3://{bucket}/feed"

    from_s3 = load(env, "--data-dir", url, "--workers", "2")
    from_disk = load(other_db_env, "--data-dir", faulty_feed)
    same = ("files_found", "files_skipped", "event_rows", "song_rows", "rejects")
    assert {k: from_s3[k] for k in same} == {k: from_disk[k] for k in same}
    # Every object is a file: the data keys are found, the others skipped.
    data_keys = [key for key in keys if key.endswith((".json", ".json.gz"))]
    assert from_s3["files_found"] == len(data_keys) > 1000
    assert from_s3["files_skipped"] == len(keys) - len(data_keys) > 0
    assert landed(env) == landed(other_db_env)
    assert_loads_match(env)
    with connect(env) as conn:
        manifest = {
            name: (etag, size, root)
            for name, etag, size, root in conn.execute(
                "select source_file, etag, size_bytes, feed_root from raw.load_manifest"
            )
        }
        gz_rows = conn.execute(
            "select count(*) from raw.events where source_file = %s", [f"{FIRST_DAY}.gz"]
        ).fetchone()[0]
    assert gz_rows > 0  # the .json.gz object was read, decompressed
    listed = {
        item["Key"][len("feed/") :]: (item["ETag"].strip('"'), item["Size"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", ())
    }
    assert {name: (etag, size) for name, (etag, size, _) in manifest.items()} == {
        name: listed[name] for name in manifest
    }
    assert {root for *_, root in manifest.values()} == {f"{url}/song_data", f"{url}/log_data"}

    # A re-run lists, and reads no object.
    before = len(moto.requests())
    again = load(env, "--data-dir", url)
    assert (again["files_loaded"], again["files_unchanged"]) == (0, from_s3["files_found"])
    requests = moto.requests()[before:]
    assert any("list-type=2" in line for line in requests)  # the server's log is read
    read = [line for line in requests if f"/{bucket}/" in line.split("?")[0]]
    assert read == []

    # A changed object replaces its rows, in one load.
    day = faulty_feed / "log_data/2018/11/2018-11-02-events.json"
    lines = [line for line in day.read_bytes().split(b"\n") if line.strip()]
    changed = [*lines[1:], b'{"ts": 1541203200000, "page": "Home", "userId": "new"}']
    client.put_object(
        Bucket=bucket, Key="feed/log_data/2018/11/2018-11-02-events.json", Body=b"\n".join(changed)
    )
    replaced = load(env, "--data-dir", url)
    assert (replaced["files_loaded"], replaced["files_replaced"], replaced["loads"]) == (1, 1, 1)
    with connect(env) as conn:
        rows = conn.execute(
            "select payload from raw.events where source_file = %s order by line_number",
            ["log_data/2018/11/2018-11-02-events.json"],
        ).fetchall()
    assert [row[0] for row in rows] == [json.loads(line) for line in changed]
    assert_loads_match(
        env, superseded=tuple(range(from_s3["first_load_id"], from_s3["last_load_id"] + 1))
    )


def test_a_server_stopped_mid_load_leaves_whole_files_and_a_rerun_completes(
    db_env, tmp_path, faulty_feed
):
    server = start_moto(tmp_path / "moto.log")
    try:
        server.client().create_bucket(Bucket="feed")
        upload_feed(server.client(), "feed", faulty_feed, "")
        env = server.env(db_env)
        loader = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sparkify.loader",
                "--data-dir",
                "s3://feed",
                "--workers",
                "2",
                "--batch-files",
                "10",
                *QUICK_TIMEOUT,
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while _loads(env) < 2 and loader.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        server.stop()  # mid-load: some batches are committed, one is under way
        out, err = loader.communicate(timeout=120)
    finally:
        server.stop()
    assert loader.returncode == EXIT_UNREACHABLE, (out, err)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("load_raw: ")
    assert_loads_match(env)  # only whole loads, no file half-loaded
    with connect(env) as conn:
        done = conn.execute("select count(*) from raw.load_manifest").fetchone()[0]
    assert 0 < done < SONGS, err  # stopped mid-load: not before it began, nor after it ended

    # The same objects again (moto keeps nothing across a restart), on the same port.
    server = start_moto(tmp_path / "moto.log", port=server.port)
    try:
        server.client().create_bucket(Bucket="feed")
        keys = upload_feed(server.client(), "feed", faulty_feed, "")
        finished = load(env, "--data-dir", "s3://feed")
    finally:
        server.stop()
    data_keys = [key for key in keys if key.endswith((".json", ".json.gz"))]
    assert finished["files_loaded"] + finished["files_unchanged"] == len(data_keys)
    assert finished["files_loaded"] == len(data_keys) - done
    assert_loads_match(env)
    with connect(env) as conn:
        manifest = {row[0] for row in conn.execute("select source_file from raw.load_manifest")}
    assert manifest == set(data_keys)


def _loads(env: dict[str, str]) -> int:
    try:
        with connect(env) as conn:
            return int(scalar(conn, "select count(*) from raw.loads"))
    except psycopg.Error:  # the loader has not made raw.loads yet
        return 0


def test_store_failures_are_one_line_and_an_exit_code(
    moto,
    moto_with_auth,
    bucket,
    db_env,
    faulty_feed,
):
    upload_feed(moto.client(), bucket, faulty_feed / "log_data", "feed/log_data")
    env = moto.env(db_env)

    missing = run_loader(env, "--data-dir", "s3://no-such-bucket-here/feed")
    assert missing.returncode == EXIT_NO_BUCKET
    assert "no such bucket" in one_line_error(missing)

    denied = run_loader(moto_with_auth.env(db_env), "--data-dir", f"s3://{bucket}/feed")
    assert denied.returncode == EXIT_DENIED
    assert "refused the credentials" in one_line_error(denied)

    nowhere = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    unreachable = run_loader(nowhere, "--data-dir", f"s3://{bucket}/feed", *QUICK_TIMEOUT)
    assert unreachable.returncode == EXIT_UNREACHABLE
    *waits, last = unreachable.stderr.strip().splitlines()  # retried for --store-timeout
    assert waits and all(line.startswith("load_raw: waiting for the store: ") for line in waits)
    assert last.startswith("load_raw: ") and "AWS_ENDPOINT_URL" in last

    empty = run_loader(env, "--data-dir", f"s3://{bucket}/nothing-here")
    assert empty.returncode == EXIT_USAGE
    assert "no .json or .json.gz object" in one_line_error(empty)

    mixed = run_loader(env, "--song-data", faulty_feed, "--log-data", f"s3://{bucket}/feed")
    assert mixed.returncode == EXIT_USAGE
    with connect(env) as conn:  # nothing of any of them landed
        assert conn.execute("select to_regclass('raw.loads')").fetchone()[0] is None

    # Only the event logs under --log-data, and the missing song_data/ is said.
    only_logs = load(env, "--data-dir", f"s3://{bucket}/feed")
    assert only_logs["song_rows"] == 0 and only_logs["event_rows"] > 0


def test_files_of_another_feed_are_not_replaced_unless_asked(db_env, tmp_path):
    first = tmp_path / "first"
    generate_feed(first, "--days", "2", "--songs", "5")
    second = tmp_path / "second"
    shutil.copytree(first, second)
    day = second / "log_data/2018/11/2018-11-02-events.json"
    day.write_bytes(day.read_bytes() + b'{"ts": 1541203200000, "page": "Home"}\n')
    loaded = load(db_env, "--data-dir", first)
    before = landed(db_env)

    refused = run_loader(db_env, "--data-dir", second)
    assert refused.returncode == EXIT_USAGE
    message = one_line_error(refused)
    assert "--replace-other-feed" in message and "PGDATABASE" in message
    assert str((first / "log_data").resolve()) in message
    assert landed(db_env) == before

    replaced = load(db_env, "--data-dir", second, "--replace-other-feed")
    assert (replaced["files_loaded"], replaced["files_replaced"]) == (1, 1)
    with connect(db_env) as conn:
        roots = dict(conn.execute("select source_file, feed_root from raw.load_manifest"))
    assert roots[day.relative_to(second).as_posix()] == str((second / "log_data").resolve())
    assert_loads_match(
        db_env, superseded=tuple(range(loaded["first_load_id"], loaded["last_load_id"] + 1))
    )


@pytest.mark.skipif(
    not UDACITY_SAMPLE.exists(), reason=f"the public sample is not at {UDACITY_SAMPLE}"
)
def test_the_course_sample_from_a_bucket_gives_the_marts_it_gives_from_disk(
    moto,
    bucket,
    db_env,
    other_db_env,
    tmp_path,
):
    upload_feed(moto.client(), bucket, UDACITY_SAMPLE, "udacity")
    load(moto.env(db_env), "--data-dir", f"s3://{bucket}/udacity")
    load(other_db_env, "--data-dir", UDACITY_SAMPLE)
    for env, folder in ((db_env, "s3"), (other_db_env, "disk")):
        (tmp_path / folder).mkdir()
        build(env, tmp_path / folder)
    from_s3 = warehouse_fingerprint(db_env, MARTS, load_times=False)
    assert from_s3 == warehouse_fingerprint(other_db_env, MARTS, load_times=False)
    assert all(rows for rows, _ in from_s3.values())


def test_a_manifest_from_before_feed_roots_is_upgraded(db_env, tmp_path):
    """A landing database from before etag and feed_root: the columns are added,
    nothing is reloaded, and a file of unknown root is not refused."""
    first = tmp_path / "first"
    generate_feed(first, "--days", "2", "--songs", "5")
    loaded = load(db_env, "--data-dir", first)
    with connect(db_env) as conn:
        conn.execute("alter table raw.load_manifest drop column etag, drop column feed_root")
        conn.commit()
    again = load(db_env, "--data-dir", first)
    assert (again["files_loaded"], again["files_unchanged"]) == (0, loaded["files_found"])

    second = tmp_path / "second"
    shutil.copytree(first, second)
    day = second / "log_data/2018/11/2018-11-02-events.json"
    day.write_bytes(day.read_bytes() + b'{"ts": 1541203200000, "page": "Home"}\n')
    replaced = load(db_env, "--data-dir", second)  # no root on record: not another feed
    assert (replaced["files_loaded"], replaced["files_replaced"]) == (1, 1)
    with connect(db_env) as conn:
        roots = dict(conn.execute("select source_file, feed_root from raw.load_manifest"))
    assert roots[day.relative_to(second).as_posix()] == str((second / "log_data").resolve())
