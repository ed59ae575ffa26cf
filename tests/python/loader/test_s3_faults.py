"""The S3 source on a bad day: the real loader against the real S3 server (moto's),
through a fault-injecting proxy of our own (fault_proxy.py) where moto cannot
produce the fault itself.

Each case is what a producer or a network does to a feed: an object deleted or
archived between listing and reading, a connection reset mid-object, a long
SlowDown, keys with '//', a store that never answers, an endpoint that is not
S3, a folder marker. The loader's answer is checked on its structured output
(exit code, the --json summary, what landed), and on its words only where the
words are the feature (naming the file, the option to raise).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fault_proxy import Rule
from helpers import REPO_ROOT, connect, generate_feed, landed, load_json
from s3_server import upload_feed

# Exit codes of src/sparkify/loader/cli.py (its EXIT_CODES table).
EXIT_OK, EXIT_SKIPPED, EXIT_UNREACHABLE, EXIT_NO_BUCKET = 0, 3, 4, 6
DAY = "log_data/2018/11/2018-11-02-events.json"


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated feed: three days of events, a few song files."""
    out = tmp_path_factory.mktemp("feed") / "feed"
    generate_feed(out, "--days", "3", "--songs", "12")
    return out


def manifest(env: dict[str, str]) -> set[str]:
    with connect(env) as conn:
        return {row[0] for row in conn.execute("select source_file from raw.load_manifest")}


def object_get(bucket: str, key: str) -> str:
    """A pattern for the proxy: the GET of exactly this object."""
    return rf"^GET /{bucket}/{re.escape(key)}(\?|$)"


def test_an_object_deleted_after_listing_is_skipped_named_and_loaded_when_back(
    moto,
    bucket,
    proxy,
    feed,
    db_env,
    other_db_env,
    tmp_path,
):
    upload_feed(moto.client(), bucket, feed, "feed")
    key = f"feed/{DAY}"
    proxy.rules = [Rule(object_get(bucket, key), delete_first=True, times=1)]
    env = proxy.env(moto.env(db_env))
    url = f"s3://{bucket}/feed"

    code, summary, err = load_json(env, "--data-dir", url, "--workers", "2")
    assert code == EXIT_SKIPPED, err
    assert [entry["file"] for entry in summary["files_unreadable"]] == [DAY]
    assert "gone" in summary["files_unreadable"][0]["reason"]
    assert f"skipped {DAY}: gone" in err  # named in the log too
    assert len(proxy.requests(object_get(bucket, key))) == 1  # a 404 is not retried
    assert summary["files_loaded"] == summary["files_found"] - 1
    # The rest landed: exactly what the same feed without that file lands.
    without = tmp_path / "without"
    shutil.copytree(feed, without)
    (without / DAY).unlink()
    assert load_json(other_db_env, "--data-dir", without)[0] == EXIT_OK
    assert landed(db_env) == landed(other_db_env)
    assert DAY not in manifest(db_env)

    # It is back: the next run loads it, and only it.
    moto.client().put_object(Bucket=bucket, Key=key, Body=(feed / DAY).read_bytes())
    code, again, err = load_json(env, "--data-dir", url)
    assert code == EXIT_OK, err
    assert (again["files_loaded"], again["files_unreadable"]) == (1, [])
    assert DAY in manifest(db_env)


def test_an_object_gone_before_it_could_be_hashed_is_skipped_not_fatal(
    moto,
    bucket,
    proxy,
    feed,
    db_env,
):
    """A loaded object whose ETag changed is hashed while planning; deleted
    just then, it is named and left out like one gone while loading."""
    upload_feed(moto.client(), bucket, feed, "feed")
    key = f"feed/{DAY}"
    env = proxy.env(moto.env(db_env))
    url = f"s3://{bucket}/feed"
    assert load_json(env, "--data-dir", url)[0] == EXIT_OK
    before = landed(db_env)
    moto.client().put_object(Bucket=bucket, Key=key, Body=(feed / DAY).read_bytes() + b"\n")
    proxy.rules = [Rule(object_get(bucket, key), delete_first=True, times=1)]

    code, summary, err = load_json(env, "--data-dir", url)
    assert code == EXIT_SKIPPED, err
    assert [entry["file"] for entry in summary["files_unreadable"]] == [DAY]
    assert summary["files_loaded"] == 0
    assert landed(db_env) == before  # its earlier version stays, nothing else moved


def test_a_local_file_gone_after_listing_is_skipped_the_same_way(db_env, feed, tmp_path):
    """The same skip through the FileSource interface: a local file removed
    between listing and open is left out of its batch, which loads the rest."""
    from sparkify.loader.batch import load_batch, skipping
    from sparkify.loader.files import LocalFileSource
    from sparkify.loader.planning import plan
    from sparkify.loader.schema import ensure_schema

    local = tmp_path / "feed"
    shutil.copytree(feed, local)
    source = LocalFileSource({"events": local / "log_data"})
    files, _ = source.list_files()
    (local / DAY).unlink()  # a producer's clean-up, after the listing
    with connect(db_env) as conn:
        conn.autocommit = True
        ensure_schema(conn)
        planned = plan(conn, source, files).to_load
        results, skipped = skipping(lambda part: load_batch(conn, source, part), planned)
    assert [name for name, _ in skipped] == [DAY]
    assert "gone" in skipped[0][1]
    assert sorted(r.file.name for r in results) == sorted(f.name for f in files if f.name != DAY)
    assert manifest(db_env) == {f.name for f in files} - {DAY}

    shutil.copy(feed / DAY, local / DAY)  # back: the next run loads it
    code, again, err = load_json(db_env, "--log-data", local / "log_data")
    assert code == EXIT_OK, err
    assert again["files_loaded"] == 1


def test_an_archived_object_is_skipped_and_named_with_how_to_restore_it(
    moto,
    bucket,
    feed,
    db_env,
):
    client = moto.client()
    upload_feed(client, bucket, feed / "log_data", "feed/log_data")
    cold = "log_data/2018/10/2018-10-31-events.json"
    client.put_object(
        Bucket=bucket, Key=f"feed/{cold}", Body=(feed / DAY).read_bytes(), StorageClass="GLACIER"
    )
    code, summary, err = load_json(moto.env(db_env), "--data-dir", f"s3://{bucket}/feed")
    assert code == EXIT_SKIPPED, err
    assert [entry["file"] for entry in summary["files_unreadable"]] == [cold]
    assert "restore" in summary["files_unreadable"][0]["reason"]
    assert summary["files_loaded"] == summary["files_found"] - 1
    assert cold not in manifest(db_env)


def _events(lines: int, seed: int) -> bytes:
    """An event log that compresses poorly (random ids), so that a .json.gz of it
    is read in many blocks."""
    rows = (
        json.dumps(
            {
                "ts": 1541030400000 + seed * 10**6 + n,
                "page": "NextSong",
                "userId": str(n % 97),
                "sessionId": n // 50,
                "song": os.urandom(12).hex(),
            }
        )
        for n in range(lines)
    )
    return "\n".join(rows).encode() + b"\n"


def test_a_connection_reset_mid_object_is_resumed_and_the_rows_equal_a_clean_load(
    moto,
    bucket,
    proxy,
    db_env,
    other_db_env,
    tmp_path,
):
    local = tmp_path / "feed"
    plain, packed = "log_data/2018/11/plain-events.json", "log_data/2018/11/packed-events.json.gz"
    for name, body in ((plain, _events(20000, 1)), (packed, gzip.compress(_events(40000, 2)))):
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(body)
    upload_feed(moto.client(), bucket, local, "feed")
    sizes = {name: (local / name).stat().st_size for name in (plain, packed)}
    proxy.rules = [
        Rule(object_get(bucket, f"feed/{name}"), cut_after=size // 2, times=1)
        for name, size in sizes.items()
    ]
    code, summary, err = load_json(
        proxy.env(moto.env(db_env)), "--data-dir", f"s3://{bucket}/feed", "--workers", "1"
    )
    assert code == EXIT_OK, err
    assert summary["files_loaded"] == 2
    assert load_json(other_db_env, "--data-dir", local)[0] == EXIT_OK
    assert landed(db_env) == landed(other_db_env)
    # The compressed object was resumed from where it broke, guarded by its ETag.
    first, resumed = proxy.requests(object_get(bucket, f"feed/{packed}"))
    start = int(re.fullmatch(r"bytes=(\d+)-", resumed[1]["Range"]).group(1))
    assert 0 < start <= sizes[packed] // 2
    assert resumed[1]["If-Match"].strip('"') and "Range" not in first[1]


def test_an_object_rewritten_while_read_is_not_spliced_but_skipped_and_loaded_next_run(
    moto,
    bucket,
    proxy,
    db_env,
):
    name = "log_data/2018/11/packed-events.json.gz"
    key = f"feed/{name}"
    old, new = _events(40000, 3), _events(30000, 4)
    moto.client().put_object(Bucket=bucket, Key=key, Body=gzip.compress(old))
    size = len(gzip.compress(old))
    proxy.rules = [  # the stream breaks; before it resumes, a new version is written
        Rule(object_get(bucket, key), cut_after=size // 2, times=1),
        Rule(object_get(bucket, key), put_first=gzip.compress(new), times=1),
    ]
    env = proxy.env(moto.env(db_env))
    code, summary, err = load_json(env, "--data-dir", f"s3://{bucket}/feed")
    assert code == EXIT_SKIPPED, err
    assert [entry["file"] for entry in summary["files_unreadable"]] == [name]
    assert "rewritten" in summary["files_unreadable"][0]["reason"]
    with connect(db_env) as conn:  # nothing of the old half landed
        assert conn.execute("select count(*) from raw.events").fetchone()[0] == 0
    assert name not in manifest(db_env)

    code, _, err = load_json(env, "--data-dir", f"s3://{bucket}/feed")
    assert code == EXIT_OK, err
    with connect(db_env) as conn:
        rows = conn.execute("select payload from raw.events order by line_number").fetchall()
    assert [row[0] for row in rows] == [json.loads(line) for line in new.splitlines()]


def test_a_20_second_slowdown_is_waited_out(
    moto,
    bucket,
    proxy,
    feed,
    db_env,
    other_db_env,
):
    upload_feed(moto.client(), bucket, feed / "log_data", "feed/log_data")
    outage = 20
    proxy.rules = [Rule(".", status=503, s3_code="SlowDown", seconds=outage)]
    started = time.monotonic()
    code, _, err = load_json(proxy.env(moto.env(db_env)), "--data-dir", f"s3://{bucket}/feed")
    assert code == EXIT_OK, err
    assert time.monotonic() - started >= outage  # the outage was real, and outlasted
    assert "waiting for the store" in err
    assert load_json(other_db_env, "--log-data", feed / "log_data")[0] == EXIT_OK
    assert landed(db_env) == landed(other_db_env)


def test_keys_with_double_slashes_are_taken_exactly_as_listed(
    moto,
    bucket,
    db_env,
):
    client = moto.client()
    bodies = {
        "log_data/2018/11/twice.json": b'{"ts": 1541030400000, "page": "Home"}\n',
        "log_data//2018/11/twice.json": b'{"ts": 1541030400001, "page": "About"}\n',
        "log_data//extra.json": b'{"ts": 1541030400002, "page": "Help"}\n',
    }
    for name, body in bodies.items():
        client.put_object(Bucket=bucket, Key=f"feed/{name}", Body=body)
    code, summary, err = load_json(moto.env(db_env), "--data-dir", f"s3://{bucket}/feed")
    assert code == EXIT_OK, err
    assert summary["files_loaded"] == len(bodies)
    with connect(db_env) as conn:
        rows = dict(conn.execute("select source_file, payload->>'ts' from raw.events"))
    assert rows == {name: str(json.loads(body)["ts"]) for name, body in bodies.items()}


def test_a_store_that_never_answers_is_said_and_given_up_on_after_the_timeout(
    moto,
    bucket,
    proxy,
    feed,
    db_env,
):
    upload_feed(moto.client(), bucket, feed / "log_data", "feed/log_data")
    proxy.rules = [Rule(".", hang=True)]
    timeout = 8
    loader = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sparkify.loader",
            "--data-dir",
            f"s3://{bucket}/feed",
            "--store-timeout",
            str(timeout),
        ],
        env=proxy.env(moto.env(db_env)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = time.monotonic()
    said: list[tuple[float, str]] = []

    def listen() -> None:
        assert loader.stderr is not None
        for line in loader.stderr:
            said.append((time.monotonic() - started, line.rstrip("\n")))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        loader.wait(timeout=120)
    finally:
        loader.kill()
    listener.join(timeout=10)
    ended = time.monotonic() - started
    assert loader.returncode == EXIT_UNREACHABLE, said
    # Said within seconds (the loader's silence per request, 5 s), not after
    # botocore's own 60 s read timeout. The bound leaves room for a process
    # start on a loaded machine: in a clean-clone CI the first line (then the
    # give-up itself, the one attempt having outlasted the 8 s) came at 14 s.
    waiting = [at for at, line in said if "waiting for the store" in line]
    assert waiting and waiting[0] < 30, said
    assert ended < timeout + 20, said  # given up after the timeout (and one silence)
    last = said[-1][1]
    assert last.startswith("load_raw: ") and "--store-timeout" in last
    assert not any("Traceback" in line for _, line in said)


def test_an_endpoint_that_is_not_s3_is_unreachable_not_a_missing_bucket(
    moto,
    bucket,
    proxy,
    db_env,
):
    proxy.rules = [Rule(".", status=404)]  # a web server: 404, an HTML page, no S3 error
    code, _, err = load_json(proxy.env(moto.env(db_env)), "--data-dir", f"s3://{bucket}/feed")
    assert code == EXIT_UNREACHABLE, err
    assert "does not speak S3" in err.strip().splitlines()[-1]
    # A real S3 answer "no such bucket" keeps its own code.
    code, _, err = load_json(moto.env(db_env), "--data-dir", f"s3://{bucket}-missing/feed")
    assert code == EXIT_NO_BUCKET, err


def test_a_folder_marker_is_skipped_and_named(
    moto,
    bucket,
    feed,
    db_env,
):
    client = moto.client()
    upload_feed(client, bucket, feed / "log_data", "feed/log_data")
    client.put_object(Bucket=bucket, Key="feed/log_data/", Body=b"")  # the prefix's own
    client.put_object(Bucket=bucket, Key="feed/log_data/odd/", Body=b"")
    code, summary, err = load_json(moto.env(db_env), "--data-dir", f"s3://{bucket}/feed")
    assert code == EXIT_OK, err
    assert summary["files_skipped"] == 1
    assert "skipped log_data/odd/: a folder marker" in err


def test_every_exit_code_is_one_row_of_one_table_and_documented():
    from sparkify.loader import cli

    help_text = subprocess.run(
        [sys.executable, "-m", "sparkify.loader", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = help_text.split("exit codes:")[1]
    docs = (REPO_ROOT / "docs" / "operations.md").read_text()
    codes = [exit.code for exit in cli.EXIT_CODES]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert re.search(rf"^  {code} ", listed, re.M), code
        assert re.search(rf"^\| {code} \|", docs, re.M), code
    # Every kind an error can have ends in that table.
    kinds = {cli.kind_of(error)[0] for error in _one_error_of_each_class(cli)}
    assert kinds <= set(cli.EXIT_BY_KIND)


def _one_error_of_each_class(cli) -> list[Exception]:
    from sparkify.loader.s3_source import DENIED, NO_BUCKET, UNREACHABLE, ObjectStoreError

    errors: list[Exception] = []
    for cls in cli.KIND_OF:
        if cls is ObjectStoreError:
            errors += [ObjectStoreError(kind, "x") for kind in (UNREACHABLE, DENIED, NO_BUCKET)]
        elif cls is cli.WorkerFailed:
            errors += [cli.WorkerFailed("x", kind) for kind in ("database", "file", UNREACHABLE)]
        else:
            errors.append(cls("x"))
    return errors
