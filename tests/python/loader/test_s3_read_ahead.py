"""Many GETs in flight against a remote store (sparkify/loader/read_ahead.py): the
real loader against the real S3 server (moto's), through the test proxy
(fault_proxy.py), which waits before answering each object GET, as a far-away
store does, and counts the requests it is answering at once.

Not timed: what is checked is how many requests the loader keeps in flight,
that it never keeps more than it is allowed, and that what lands is what the
same feed lands from disk.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import time
from pathlib import Path

import psycopg
import pytest

from fault_proxy import Rule
from helpers import connect, generate_feed, landed, load_json, scalar, start_loader, wait_until
from s3_server import upload_feed

EXIT_OK, EXIT_SKIPPED = 0, 3
SONGS = 80
# Long enough that requests the loader sends together are surely answered
# together; short enough that one at a time still ends in seconds.
DELAY = 0.2


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("feed") / "feed"
    generate_feed(out, "--days", "3", "--songs", str(SONGS))
    return out


def object_gets(bucket: str) -> str:
    return rf"^GET /{bucket}/feed/(song|log)_data/"


def test_many_gets_are_in_flight_at_most_as_many_as_allowed_and_rows_equal_disk(
    moto,
    bucket,
    proxy,
    feed,
    db_env,
    other_db_env,
):
    upload_feed(moto.client(), bucket, feed, "feed")
    proxy.rules = [Rule(object_gets(bucket), delay=DELAY)]
    env = proxy.env(moto.env(db_env))

    code, summary, err = load_json(
        env, "--data-dir", f"s3://{bucket}/feed", "--workers", "2", "--s3-in-flight", "16"
    )
    assert code == EXIT_OK, err
    assert summary["files_loaded"] == summary["files_found"] > SONGS
    # One worker at a time would be 2 at once; 16 fetched ahead between the two
    # workers, and each worker's own stream of a big object, at the most.
    assert 8 <= proxy.most_at_once <= 16 + 2
    # Fetched ahead, still each object once.
    gets = collections.Counter(line for line, _ in proxy.requests(object_gets(bucket)))
    assert len(gets) == summary["files_found"]
    assert set(gets.values()) == {1}
    assert load_json(other_db_env, "--data-dir", feed)[0] == EXIT_OK
    assert landed(db_env) == landed(other_db_env)


def test_a_song_gone_before_its_fetch_ahead_is_skipped_named_and_the_rest_lands(
    moto,
    bucket,
    proxy,
    feed,
    db_env,
    other_db_env,
    tmp_path,
):
    upload_feed(moto.client(), bucket, feed, "feed")
    song = sorted(path.relative_to(feed).as_posix() for path in feed.glob("song_data/**/*.json"))[
        SONGS // 2
    ]
    gone = rf"^GET /{bucket}/feed/{re.escape(song)}(\?|$)"
    proxy.rules = [
        Rule(gone, delete_first=True, delay=DELAY, times=1),
        Rule(object_gets(bucket), delay=DELAY),
    ]
    env = proxy.env(moto.env(db_env))

    code, summary, err = load_json(env, "--data-dir", f"s3://{bucket}/feed", "--workers", "1")
    assert code == EXIT_SKIPPED, err
    assert [entry["file"] for entry in summary["files_unreadable"]] == [song]
    assert f"skipped {song}: gone" in err
    assert proxy.most_at_once > 2  # it was among the objects fetched ahead
    without = tmp_path / "without"
    shutil.copytree(feed, without)
    (without / song).unlink()
    assert load_json(other_db_env, "--data-dir", without)[0] == EXIT_OK
    assert landed(db_env) == landed(other_db_env)


def test_an_object_grown_past_the_read_ahead_size_since_listing_is_streamed_in_its_turn(
    moto,
    bucket,
    proxy,
    feed,
    db_env,
    other_db_env,
    tmp_path,
):
    """Listed small, rewritten 3 MB before its GET ahead: not held whole (the
    fetch ahead stops at the size the store gives), but read in its turn like
    any big object, and what lands is the new version, as from disk."""
    upload_feed(moto.client(), bucket, feed, "feed")
    day = "log_data/2018/11/2018-11-02-events.json"
    grown = b"".join(
        b'{"ts": %d, "page": "NextSong", "userId": "%d", "song": "%s"}\n'
        % (1541116800000 + n, n % 97, b"x" * 40)
        for n in range(40000)
    )
    assert len(grown) > 2 * 2**20 > (feed / day).stat().st_size
    proxy.rules = [Rule(rf"^GET /{bucket}/feed/{re.escape(day)}(\?|$)", put_first=grown, times=1)]
    env = proxy.env(moto.env(db_env))

    code, summary, err = load_json(env, "--data-dir", f"s3://{bucket}/feed", "--workers", "1")
    assert code == EXIT_OK, err
    assert summary["files_loaded"] == summary["files_found"]
    grown_feed = tmp_path / "grown"
    shutil.copytree(feed, grown_feed)
    (grown_feed / day).write_bytes(grown)
    assert load_json(other_db_env, "--data-dir", grown_feed)[0] == EXIT_OK
    assert landed(db_env) == landed(other_db_env)
    # Fetched ahead (its size seen, its body left), then read in its turn.
    assert len(proxy.requests(rf"^GET /{bucket}/feed/{re.escape(day)}(\?|$)")) == 2


# A listing page holds at most 1,000 keys: these song files take two, and the
# first page fills two batches.
PAGED_SONGS = 1100
PAGED_BATCH_FILES = 400
# How long the store answers SlowDown to the second page (the loader waits it
# out): far longer than the first page's objects take to load.
SECOND_PAGE_SLOWDOWN = 20.0


def test_full_batches_load_while_the_rest_of_the_feed_is_listed(
    moto, bucket, proxy, db_env, other_db_env, tmp_path
):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "1", "--songs", str(PAGED_SONGS))
    upload_feed(moto.client(), bucket, feed / "song_data", "song_data")
    second_page = Rule(
        rf"^GET /{bucket}\?.*continuation-token=",
        status=503,
        s3_code="SlowDown",
        seconds=SECOND_PAGE_SLOWDOWN,
    )
    proxy.rules = [second_page]
    env = proxy.env(moto.env(db_env))

    options = ["--workers", "2", "--batch-files", str(PAGED_BATCH_FILES), "--json"]
    url = f"s3://{bucket}/song_data"
    loader = start_loader(env, tmp_path / "loader.err", "--song-data", url, *options)
    with connect(db_env) as conn:
        conn.autocommit = True
        wait_until(lambda: loader.poll() is not None or loads_committed(conn), "a load or the end")
        seen_at = time.monotonic()
        still_listing = loader.poll() is None
    out, _ = loader.communicate(timeout=300)
    assert loader.returncode == EXIT_OK, (tmp_path / "loader.err").read_text()
    assert second_page.first_hit is not None  # the feed was listed in two pages
    # A batch of the first page committed before the second page was answered.
    assert still_listing and seen_at - second_page.first_hit < SECOND_PAGE_SLOWDOWN
    summary = json.loads(out)
    assert summary["files_loaded"] == summary["files_found"] == PAGED_SONGS
    assert load_json(other_db_env, "--song-data", feed / "song_data")[0] == EXIT_OK
    assert landed(db_env) == landed(other_db_env)


def loads_committed(conn: psycopg.Connection) -> int:
    if scalar(conn, "select to_regclass('raw.loads') is null"):
        return 0
    return int(scalar(conn, "select count(*) from raw.loads"))
