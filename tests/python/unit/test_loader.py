"""The loader's pure logic, with no server: line triage, the file walk, planning
against a manifest given as plain data, the binary COPY encoding, the --json
summary, and the constants Python shares with SQL and the dbt YAML.

The end-to-end tests (loader/test_landing.py and others) run the same code against
PostgreSQL; these say where a mistake is, in milliseconds.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import re
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
import yaml

from sparkify.checkout import REPO_ROOT
from sparkify.loader.columns import LINE_COLUMNS, LOADS_COLUMNS, REJECT_COLUMNS
from sparkify.loader.contract import (
    EVENTS,
    FEED_FOLDERS,
    REJECT_REASONS,
    SONGS,
    SOURCE_KINDS,
)
from sparkify.loader.copy_encoding import (
    COPY_HEADER,
    COPY_TRAILER,
    copy_numbered,
    copy_rows,
    name_field,
)
from sparkify.loader.files import LocalFileSource, SkippedFile, SourceFile
from sparkify.loader.lines import (
    MAX_NESTING_DEPTH,
    TOO_LONG_KEPT_BYTES,
    Chunk,
    classify,
    document_chunk,
    nesting_depth,
    read_chunks,
    read_document,
)
from sparkify.loader.planning import ManifestEntry, PlannedFile, batches, in_load_order, plan_files
from sparkify.loader.read_ahead import ReadAhead
from sparkify.loader.reading import FileResult, read_file
from sparkify.loader.schema import ADDED_MANIFEST_COLUMNS, DDL
from sparkify.loader.summary import Summary
from sparkify.messages import one_line

STAGING_YAML = REPO_ROOT / "models" / "staging" / "sparkify" / "_sparkify__models.yml"


# --- line triage (lines.py) ---------------------------------------------------


def chunks_of(data: bytes, **options: Any) -> list[Chunk]:
    return list(read_chunks(io.BytesIO(data), whole_document=False, **options))


def candidates(chunks: list[Chunk]) -> list[tuple[int, bytes]]:
    return [row for chunk in chunks for row in chunk.numbered() + chunk.suspects]


def test_clean_lines_pass_whole_with_their_numbers():
    data = b'{"a": 1}\n{"b": 2}\n{"c": 3}\n'
    (chunk,) = chunks_of(data)
    assert chunk.clean_lines == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}']
    assert chunk.numbered() == [(1, b'{"a": 1}'), (2, b'{"b": 2}'), (3, b'{"c": 3}')]
    assert (chunk.rejects, chunk.suspects, chunk.ends_unterminated) == ([], [], False)
    assert chunk.size == len(data)


def test_bom_crlf_and_blank_lines_are_not_input():
    data = b'\xef\xbb\xbf{"a": 1}\r\n\r\n   \n{"b": 2}\r\n'
    assert candidates(chunks_of(data)) == [(1, b'{"a": 1}'), (4, b'{"b": 2}')]


def test_a_line_over_the_limit_is_a_reject_not_a_row():
    long_line = b'{"x": "' + b"y" * 100 + b'"}'
    chunks = chunks_of(b'{"a": 1}\n' + long_line + b"\n", max_line_bytes=50)
    assert candidates(chunks) == [(1, b'{"a": 1}')]
    (reject,) = [reject for chunk in chunks for reject in chunk.rejects]
    assert (reject.line_number, reject.reason, reject.line) == (2, "too_long", long_line)


def test_escapes_jsonb_refuses_are_set_apart_as_suspects():
    data = b'{"a": 1}\n{"nul": "\\u0000"}\n{"half": "\\ud800"}\n'
    chunks = chunks_of(data)
    suspects = [row for chunk in chunks for row in chunk.suspects]
    assert [number for number, _ in suspects] == [2, 3]
    assert [number for chunk in chunks for number, _ in chunk.numbered()] == [1]


def test_a_cut_last_line_is_truncated_and_a_cut_middle_line_is_not_json():
    chunks = chunks_of(b'{"a": 1}\n{"b": 2}\n{"c": 3')
    assert chunks[-1].ends_unterminated
    assert candidates(chunks) == [(1, b'{"a": 1}'), (2, b'{"b": 2}')]
    rejects = [(r.line_number, r.reason) for chunk in chunks for r in chunk.rejects]
    assert rejects == [(3, "truncated")]
    middle = chunks_of(b'{"a": 1}\n{"b": 2\n{"c": 3}\n')
    assert not any(chunk.ends_unterminated for chunk in middle)
    rejects = [(r.line_number, r.reason) for chunk in middle for r in chunk.rejects]
    assert rejects == [(2, "not_json")]


@pytest.mark.parametrize(
    ("line", "may_be_truncated", "reason"),
    [
        (b'{"ok": true}', False, None),
        (b"not json", False, "not_json"),
        (b"[1, 2]", False, "not_an_object"),
        (b'{"bad": "\xff"}', False, "invalid_utf8"),
        (b'{"cut": "sho', True, "truncated"),
        (b'{"cut": "sho', False, "not_json"),  # mid-file, a cut line is just not JSON
        (b"[" * 100_000 + b"]" * 100_000, False, "too_deep"),
        (b'{"a": 1}\r{"b": 2}', False, "cr_line_breaks"),
        (b'{"n": NaN}', False, "not_json"),
    ],
)
def test_classify_gives_each_bad_line_its_reason(line, may_be_truncated, reason):
    reject = classify(7, line, may_be_truncated=may_be_truncated)
    assert (reject.reason if reject else None) == reason
    if reject:
        assert (reject.line_number, reject.line) == (7, line) and reject.detail


def test_a_song_file_is_one_document():
    chunk = document_chunk(b'\xef\xbb\xbf{\n  "song_id": "S1",\n  "year": 0\n}\n')
    ((number, line),) = chunk.numbered()
    assert number == 1 and json.loads(line) == {"song_id": "S1", "year": 0}


# --- lines too long: counted, not kept (lines.py, reading.py) ------------------

MIB = 1024 * 1024


class LazyStream:
    """A file's bytes made on demand from a generator of pieces: a line of
    hundreds of MB that never exists whole, not even in the test."""

    def __init__(self, pieces: Iterator[bytes]):
        self.pieces = pieces
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            piece = next(self.pieces, None)
            if piece is None:
                break
            self.buffer += piece
        cut = len(self.buffer) if size < 0 else size
        block, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return block


def huge_line_file(line_mib: int, *, last: bytes = b'{"c": 3}\n') -> Iterator[bytes]:
    """A line, then one of `line_mib` MiB (a JSON object), then `last`."""
    yield b'{"a": 1}\n{"big": "'
    filler = b"y" * MIB
    for _ in range(line_mib):
        yield filler
    yield b'"}\n' + last


def big_line_length(line_mib: int) -> int:
    return len(b'{"big": "') + line_mib * MIB + len(b'"}')


def rejects_of(chunks: list[Chunk]) -> list[tuple[int, str, bytes, str]]:
    return [(r.line_number, r.reason, r.line, r.detail) for c in chunks for r in c.rejects]


def peak_traced(run: Any) -> tuple[Any, int]:
    """What run() returns, and the most memory Python held while it ran."""
    tracemalloc.start()
    try:
        return run(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_line_of_hundreds_of_mb_is_counted_in_bounded_memory():
    """A 300 MiB line, limit 4 MiB: memory stays near the limit (the whole line
    was kept and joined: twice its size), the reject says its number and full
    length, and the lines around it keep theirs."""
    size = 300

    def read() -> list[Chunk]:
        stream = cast(BinaryIO, LazyStream(huge_line_file(size)))  # read() is all it needs
        return list(read_chunks(stream, whole_document=False, max_line_bytes=4 * MIB))

    chunks, peak = peak_traced(read)
    assert peak < 16 * MIB, f"{peak / MIB:.0f} MiB"
    assert candidates(chunks) == [(1, b'{"a": 1}'), (3, b'{"c": 3}')]
    ((number, reason, kept, detail),) = rejects_of(chunks)
    length = big_line_length(size)
    assert (number, reason) == (2, "too_long")
    assert detail.startswith(f"{length} bytes, over the limit of {4 * MIB}")
    assert kept == (b'{"big": "' + b"y" * MIB)[:TOO_LONG_KEPT_BYTES]
    assert sum(chunk.size for chunk in chunks) == len(b"".join(huge_line_file(size)))


def test_a_too_long_reject_keeps_the_same_head_whatever_the_lines_size():
    """One rule: the first TOO_LONG_KEPT_BYTES, so a line just over the limit
    and one far over it keep the same bytes; a short rejected line is kept whole."""
    line = b'{"x": "' + b"z" * (3 * MIB) + b'"}'
    data = b'{"a": 1}\n' + line + b"\n"
    kept = set()
    for limit in (2 * MIB, len(line) - 1):  # streamed, then read in one piece
        ((_, reason, head, detail),) = rejects_of(chunks_of(data, max_line_bytes=limit))
        assert reason == "too_long" and detail.startswith(f"{len(line)} bytes")
        kept.add(head)
    assert kept == {line[:TOO_LONG_KEPT_BYTES]}
    short = b'{"x": "' + b"z" * 100 + b'"}'
    ((_, _, head, _),) = rejects_of(chunks_of(short + b"\n", max_line_bytes=50))
    assert head == short


@pytest.mark.parametrize(
    ("data", "wanted"),
    [
        # the last line, unterminated and over the limit: too_long, not truncated
        (b'{"a": 1}\n{"x": "' + b"z" * 5000, [(2, "too_long", 5000 + 7)]),
        # a CR before the newline is not the line's (as for a short line)
        (b'{"x": "' + b"z" * 5000 + b'"}\r\n{"b": 2}\n', [(1, "too_long", 5000 + 9)]),
        # whitespace only, however long: a blank line, not input
        (b'{"a": 1}\n' + b" " * 5000 + b'\n{"b": 2}\n', []),
    ],
    ids=["unterminated", "crlf", "blank"],
)
def test_a_streamed_long_line_is_judged_as_a_short_one_would_be(data, wanted):
    chunks = chunks_of(data, max_line_bytes=1000, chunk_bytes=256)
    got = [(n, reason, int(detail.split()[0])) for n, reason, _, detail in rejects_of(chunks)]
    assert got == wanted
    assert [n for n, _ in candidates(chunks)] == [
        n
        for n, line in enumerate(data.split(b"\n"), 1)
        if line.strip().startswith(b"{") and n not in {w[0] for w in wanted}
    ]


def gzip_bomb(line_mib: int) -> bytes:
    """A small .json.gz that inflates to one JSON document of `line_mib` MiB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    document = [b'{"big": "', *[b"y" * MIB] * line_mib, b'"}\n']
    return b"".join([*map(packer.compress, document), packer.flush()])


def test_a_song_file_that_inflates_to_hundreds_of_mb_is_too_long_in_bounded_memory(tmp_path):
    size = 300
    songs = tmp_path / "songs"
    bomb = write(songs / "TRBOMB.json.gz", gzip_bomb(size))
    assert bomb.stat().st_size < MIB
    source = LocalFileSource({SONGS: songs})
    (file,), _ = source.list_files()
    result = FileResult(file)

    def read() -> list[Chunk]:
        return list(read_file(source, file, result, max_line_bytes=4 * MIB))

    chunks, peak = peak_traced(read)
    assert peak < 16 * MIB, f"{peak / MIB:.0f} MiB"
    ((number, reason, kept, detail),) = rejects_of(chunks)
    assert (number, reason) == (1, "too_long")  # its length: without the newline after it
    assert detail.startswith(f"{big_line_length(size)} bytes, over the limit of {4 * MIB}")
    assert len(kept) == TOO_LONG_KEPT_BYTES and candidates(chunks) == []
    assert result.checksum == source.checksum(file)  # the stored bytes, read to the end


def test_a_song_file_just_within_the_limit_lands_whatever_blanks_surround_it():
    document = b'{"song_id": "S1", "title": "' + b"t" * 3000 + b'"}'
    limit = len(document)
    padded = b"\xef\xbb\xbf \n" + document + b"\n" + b" " * 5000
    chunk = read_document(io.BytesIO(padded), limit, block_bytes=256)
    assert chunk.numbered() == [(1, document)] and chunk.rejects == []
    over = read_document(io.BytesIO(padded), limit - 1, block_bytes=256)
    assert [(r.reason, r.line) for r in over.rejects] == [("too_long", document)]


# --- nesting depth: one limit for both engines (lines.py) ----------------------


def deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def deep_array_in_object(depth: int) -> bytes:
    return b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize("shape", [deep_object, deep_array_in_object])
@pytest.mark.parametrize("path", ["clean", "line by line", "classify", "song file"])
def test_a_line_nested_past_the_limit_is_too_deep_on_every_path(shape, path):
    at_limit, over = shape(MAX_NESTING_DEPTH), shape(MAX_NESTING_DEPTH + 1)
    assert MAX_NESTING_DEPTH == 512  # the documented limit
    results = {}
    for line in (at_limit, over):
        if path == "classify":
            reject = classify(3, line, may_be_truncated=False)
            results[line] = (reject.reason, reject.detail) if reject else None
            continue
        if path == "song file":
            chunks = [document_chunk(line)]
        else:
            # A blank line sends the chunk down the line-by-line path.
            blank = b"\n" if path == "line by line" else b""
            chunks = chunks_of(b'{"a": 1}\n' + blank + b'{"b": 2}\n' + line + b"\n")
            assert bool(chunks[0].clean_lines) == (path == "clean" and line == at_limit)
        found = [(r.reason, r.detail) for c in chunks for r in c.rejects]
        assert len(found) + len(candidates(chunks)) == (1 if path == "song file" else 3)
        results[line] = found[0] if found else None
    assert results[at_limit] is None
    assert results[over] == ("too_deep", "nested 513 levels deep, over the limit of 512")


@pytest.mark.parametrize(
    ("line", "depth"),
    [
        (b'{"a": 1}', 1),
        (b'{"a": {"b": [1, {"c": []}]}}', 5),
        (b'{"s": "' + b"{[" * 5000 + b'"}', 1),  # brackets inside a string
        (b'{"s": "\\"' + b"[" * 5000 + b'"}', 1),  # after an escaped quote, still inside
        (b'{"s": "\\\\", "t": [[[1]]]}', 4),  # an escaped backslash ends nothing
        (b'{"s": "\\\\\\"[[[", "t": [[[1]]]}', 4),  # backslash, then an escaped quote
        (b"[]" * 5000, 1),
    ],
)
def test_nesting_depth_counts_brackets_outside_strings(line, depth):
    assert nesting_depth(line) == depth


def test_brackets_inside_strings_do_not_make_a_line_too_deep():
    line = b'{"song": "' + b"{" * 10_000 + b'", "list": [' + b'"]",' * 1000 + b"1]}"
    chunks = chunks_of(b'{"a": 1}\n' + line + b"\n")
    assert candidates(chunks) == [(1, b'{"a": 1}'), (2, line)]
    assert chunks[0].clean_lines  # the fast path


def test_a_line_of_millions_of_brackets_in_a_string_is_measured_quickly():
    line = b'{"s": "' + b"{" * (16 * MIB) + b'", "t": [1]}'
    started = time.perf_counter()
    assert nesting_depth(line) == 2
    assert time.perf_counter() - started < 2  # about 0.05 s; a Python loop takes seconds


# --- the file walk (files.py) -------------------------------------------------


def write(path: Path, data: bytes = b'{"a": 1}\n') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_the_walk_lists_data_files_under_stable_names(tmp_path):
    logs, songs = tmp_path / "feed" / "logs", tmp_path / "feed" / "songs"
    write(logs / "2018" / "11" / "day-1.json")
    write(logs / "2018" / "day-2.json.gz", gzip.compress(b'{"a": 1}\n'))
    write(logs / "README.txt")
    write(logs / "x.json.bak")
    write(songs / "A" / "TR1.json")
    source = LocalFileSource({EVENTS: logs, SONGS: songs})
    files, skipped = source.list_files()
    assert [(f.kind, f.name) for f in files] == [
        (EVENTS, "log_data/2018/11/day-1.json"),
        (EVENTS, "log_data/2018/day-2.json.gz"),
        (SONGS, "song_data/A/TR1.json"),
    ]
    assert skipped == ["log_data/README.txt", "log_data/x.json.bak"]
    assert all(f.size > 0 and f.mtime_ns > 0 for f in files)
    assert source.unreadable == []
    assert files[1].compressed and not files[0].compressed


def test_the_walk_follows_links_inside_the_feed_only(tmp_path):
    logs = tmp_path / "logs"
    day = write(logs / "day.json")
    secret = write(tmp_path / "outside" / "secret.json", b'{"password": "x"}\n')
    os.symlink(day, logs / "same-day.json")
    os.symlink(secret, logs / "secret.json")
    os.symlink(logs / "missing.json", logs / "dangling.json")
    os.symlink(logs, logs / "loop")  # a folder linked into itself: listed once
    files, skipped = LocalFileSource({EVENTS: logs}).list_files()
    assert [f.name for f in files] == ["log_data/day.json", "log_data/same-day.json"]
    assert skipped == []


def test_a_folder_that_cannot_be_listed_is_named_and_the_rest_listed(tmp_path):
    logs = tmp_path / "logs"
    write(logs / "day.json")
    # A path over the system's limit cannot be listed, whoever runs the test
    # (root reads a folder without permission). Made one folder at a time,
    # each relative to the last: no single call sees the whole path.
    folder = os.open(logs, os.O_RDONLY)
    try:
        for _ in range(os.pathconf(logs, "PC_PATH_MAX") // 200 + 1):
            os.mkdir("d" * 200, dir_fd=folder)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=folder)
            os.close(folder)
            folder = inner
    finally:
        os.close(folder)
    source = LocalFileSource({EVENTS: logs})
    files, _ = source.list_files()
    assert [f.name for f in files] == ["log_data/day.json"]
    assert source.unreadable and source.unreadable[0][0].startswith("log_data/ddd")


# --- planning against a manifest given as plain data (planning.py) -------------


@pytest.fixture
def feed(tmp_path: Path) -> tuple[LocalFileSource, dict[str, SourceFile]]:
    logs = tmp_path / "logs"
    for day in range(1, 5):
        write(logs / f"day-{day}.json", b'{"day": %d}\n' % day)
    source = LocalFileSource({EVENTS: logs})
    files, _ = source.list_files()
    return source, {f.name.removeprefix("log_data/"): f for f in files}


def entry(
    source: LocalFileSource, file: SourceFile, *, checksum: str | None = None, **changes: Any
) -> ManifestEntry:
    """The manifest row the loader would have written for this file."""
    values: dict[str, Any] = {
        "checksum": checksum or source.checksum(file),
        "size": file.size,
        "mtime_ns": file.mtime_ns,
        "etag": file.etag,
        "kind": file.kind,
        "feed_root": source.feed_root(file.kind),
    }
    return ManifestEntry(**{**values, **changes})


def test_planning_sorts_new_changed_unchanged_and_gone(feed):
    source, by_name = feed
    new, same, touched, changed = (by_name[f"day-{n}.json"] for n in range(1, 5))
    manifest = {
        same.name: entry(source, same),
        # Same content, another stamp: hashed, found unchanged, restamped.
        touched.name: entry(source, touched, mtime_ns=touched.mtime_ns - 10**9),
        # Another stamp and another checksum: replaced.
        changed.name: entry(source, changed, checksum="0" * 64, mtime_ns=1),
        "log_data/gone.json": entry(source, same, checksum="1" * 64),
        "song_data/TR1.json": entry(source, same, kind=SONGS),  # a kind not listed
    }
    result = plan_files(source, list(by_name.values()), manifest, kinds=[EVENTS])
    assert [(item.file, item.replaces) for item in result.to_load] == [
        (new, False),
        (changed, True),
    ]
    assert result.to_load[0].checksum is None  # hashed while it loads
    assert result.to_load[1].checksum == source.checksum(changed)
    assert result.unchanged == [same, touched]
    assert result.restamped == [touched]
    assert result.vanished == [(EVENTS, "log_data/gone.json")]
    assert result.other_feed == []


def test_a_file_gone_before_it_could_be_hashed_is_named_not_fatal(feed):
    """A file whose stamp changed must be hashed while planning; gone by then,
    it is named as unreadable (exit 3), and the plan goes on with the rest."""
    source, by_name = feed
    gone, kept = by_name["day-1.json"], by_name["day-2.json"]
    manifest = {
        gone.name: entry(source, gone, mtime_ns=1),
        kept.name: entry(source, kept, checksum="0" * 64, mtime_ns=1),
    }
    source.path_of(gone).unlink()
    result = plan_files(source, [gone, kept], manifest)
    assert [name for name, _ in result.unreadable] == [gone.name]
    assert [item.file for item in result.to_load] == [kept]
    assert result.unchanged == []


def test_a_file_rewritten_with_its_old_stamp_needs_verify(feed):
    source, by_name = feed
    file = by_name["day-1.json"]
    manifest = {file.name: entry(source, file, checksum="0" * 64)}  # same stamp, other bytes
    assert plan_files(source, [file], manifest).unchanged == [file]
    verified = plan_files(source, [file], manifest, verify=True)
    assert [item.file for item in verified.to_load] == [file]


def test_an_object_rewritten_within_its_second_is_told_by_its_etag(feed):
    """A store's listing gives the last-modified second: an object rewritten in
    the same second, at the same size, differs from the recorded one only by its
    ETag. That is enough to hash it again, and other bytes are loaded again."""
    source, by_name = feed
    file = dataclasses.replace(by_name["day-1.json"], etag="new-etag")
    recorded = entry(source, file, checksum="0" * 64, etag="old-etag")
    result = plan_files(source, [file], {file.name: recorded})
    assert [(item.file, item.replaces) for item in result.to_load] == [(file, True)]
    same_etag = plan_files(source, [file], {file.name: entry(source, file, checksum="0" * 64)})
    assert same_etag.unchanged == [file]  # the stamp alone decides: not hashed


def test_paths_not_listed_are_unknown_not_gone(feed):
    source, by_name = feed
    file = by_name["day-1.json"]
    manifest = {
        "log_data/hidden/a.json": entry(source, file, checksum="0" * 64),
        "log_data/hidden.json": entry(source, file, checksum="1" * 64),
    }
    source.unreadable = [("log_data/hidden", "Permission denied")]  # as its listing says
    result = plan_files(source, [], manifest)
    assert result.vanished == [(EVENTS, "log_data/hidden.json")]


def test_another_feeds_files_never_vanish_and_are_named_when_replaced(feed):
    source, by_name = feed
    file = by_name["day-1.json"]
    manifest = {
        file.name: entry(source, file, checksum="0" * 64, mtime_ns=1, feed_root="/elsewhere"),
        "log_data/theirs.json": entry(source, file, feed_root="/elsewhere"),
        "log_data/old.json": entry(source, file, feed_root=None),  # before roots were kept
    }
    result = plan_files(source, [file], manifest)
    assert result.other_feed == [(file.name, "/elsewhere")]
    assert result.vanished == [(EVENTS, "log_data/old.json")]


def planned(kind: str, name: str, size: int) -> PlannedFile:
    return PlannedFile(SourceFile(kind, name, size), None, replaces=False)


def test_batches_keep_to_one_kind_and_both_limits():
    items = [
        planned(EVENTS, "e1", 60),
        planned(EVENTS, "e2", 30),
        planned(EVENTS, "e3", 30),
        planned(EVENTS, "big", 500),  # over the limit: alone
        planned(SONGS, "s1", 1),
        planned(SONGS, "s2", 1),
        planned(SONGS, "s3", 1),
    ]
    got = [[item.file.name for item in batch] for batch in batches(items, 100, 2)]
    assert got == [["e1", "e2"], ["e3"], ["big"], ["s1", "s2"], ["s3"]]


def test_load_order_puts_big_event_files_first_and_songs_by_name():
    items = [
        planned(SONGS, "s2", 9),
        planned(EVENTS, "small", 1),
        planned(SONGS, "s1", 1),
        planned(EVENTS, "large", 100),
    ]
    assert [item.file.name for item in in_load_order(items)] == ["large", "small", "s2", "s1"]


# --- the binary COPY encoding (copy_encoding.py) ------------------------------


def decode_rows(data: bytes) -> list[tuple[bytes, int, str, int]]:
    """PostgreSQL's binary COPY format read back: (payload, load_id, name, line)."""
    assert data.startswith(COPY_HEADER) and data.endswith(COPY_TRAILER)
    body, rows, at = data[len(COPY_HEADER) : -len(COPY_TRAILER)], [], 0
    while at < len(body):
        (field_count,) = struct.unpack_from("!h", body, at)
        assert field_count == 4
        at += 2
        row: list[bytes] = []
        for _ in range(field_count):
            (length,) = struct.unpack_from("!i", body, at)
            row.append(body[at + 4 : at + 4 + length])
            at += 4 + length
        payload, load_id, name, line = row
        assert payload[0] == 1  # jsonb's binary input: version 1, then the text
        rows.append(
            (
                payload[1:],
                struct.unpack("!q", load_id)[0],
                name.decode("utf-8"),
                struct.unpack("!i", line)[0],
            )
        )
    return rows


def test_copy_rows_carry_each_line_as_it_is():
    lines = [b'{"a": 1}', b'{"tab": "\t", "quote": "\\"", "nl": "\\n"}', b'{"\xc3\xa9": 2}']
    file_field = name_field("log_data/d\u00e9j\u00e0 vu; drop.json", 42)
    data = COPY_HEADER + copy_rows(file_field, range(7, 10), lines) + COPY_TRAILER
    assert decode_rows(data) == [
        (line, 42, "log_data/d\u00e9j\u00e0 vu; drop.json", number)
        for number, line in zip(range(7, 10), lines, strict=True)
    ]


def test_numbered_rows_encode_as_rows_do():
    rows = [(3, b'{"a": 1}'), (8, b'{"b": 2}')]
    file_field = name_field("f.json", 1)
    numbered = copy_numbered(file_field, rows)
    assert numbered == copy_rows(file_field, [3, 8], [b'{"a": 1}', b'{"b": 2}'])
    assert [
        (line, number) for line, _, _, number in decode_rows(COPY_HEADER + numbered + COPY_TRAILER)
    ] == [(b'{"a": 1}', 3), (b'{"b": 2}', 8)]


# --- the --json summary (summary.py) ------------------------------------------


def summary(**changes: Any) -> Summary:
    values: dict[str, Any] = {
        "files_found": 9,
        "files_loaded": 4,
        "files_replaced": 1,
        "files_unchanged": 5,
        "files_skipped": 2,
        "paths_unreadable": [],
        "files_vanished": ["log_data/gone.json"],
        "files_pruned": 0,
        "event_rows": 120,
        "song_rows": 3,
        "rejects": 6,
        "loads": 3,
        "first_load_id": 7,
        "last_load_id": 9,
        "workers": 2,
        "batches": 3,
        "seconds": 1.25,
        "seconds_listing": 0.25,
        "seconds_planning": 0.5,
        "seconds_loading": 0.5,
    }
    return Summary(**{**values, **changes})


# What scripts and the other tests read from --json: the keys and their types.
SUMMARY_SHAPE = {
    "files_found": int,
    "files_loaded": int,
    "files_replaced": int,
    "files_unchanged": int,
    "files_skipped": int,
    "paths_unreadable": list,
    "files_vanished": list,
    "files_pruned": int,
    "event_rows": int,
    "song_rows": int,
    "rejects": int,
    "loads": int,
    "first_load_id": int,
    "last_load_id": int,
    "workers": int,
    "batches": int,
    "seconds": float,
    "seconds_listing": float,
    "seconds_planning": float,
    "seconds_loading": float,
    "files_unreadable": list,
}


def test_the_json_summary_has_its_documented_shape():
    said = json.loads(summary().as_json())
    assert list(said) == list(SUMMARY_SHAPE)  # no lake key for PostgreSQL
    assert {key: type(value) for key, value in said.items()} == SUMMARY_SHAPE
    assert said["files_vanished"] == ["log_data/gone.json"]
    lake = json.loads(summary(lake="/lake").as_json())
    assert list(lake) == [*SUMMARY_SHAPE, "lake"] and lake["lake"] == "/lake"
    assert {f.name for f in fields(Summary)} == {*SUMMARY_SHAPE, "lake"}


def test_the_prose_summary_says_the_same_numbers():
    prose = summary().prose()
    assert prose.startswith("loaded 4 files (1 replaced), 5 unchanged, 2 skipped as not data;")
    assert "120 event rows, 3 song rows, 6 rejects; 3 loads, load ids 7-9;" in prose
    assert "1 no longer in the feed (0 pruned)" in prose and "with 2 workers)" in prose
    one = summary(loads=1, first_load_id=7, last_load_id=7, workers=1).prose()
    assert "; 1 load, load id 7;" in one and "with 1 worker)" in one
    assert "; 0 loads;" in summary(loads=0, first_load_id=0, last_load_id=0).prose()


# --- one error, one line (errors.py) ------------------------------------------


def test_an_error_is_said_in_one_line():
    assert one_line(ValueError("first line\nsecond line")) == "first line"
    assert one_line(ValueError("  \n padded \n")) == "padded"
    assert one_line(KeyboardInterrupt()) == "KeyboardInterrupt"


# --- what Python, SQL and the dbt YAML share (contract.py) --------------------


def accepted_values(model: str, column: str) -> list[str]:
    """The accepted_values of a column in the staging models' YAML."""
    document = yaml.safe_load(STAGING_YAML.read_text())
    (found,) = [m for m in document["models"] if m["name"] == model]
    (described,) = [c for c in found["columns"] if c["name"] == column]
    (test,) = [t["accepted_values"] for t in described["data_tests"] if "accepted_values" in t]
    return list(test["arguments"]["values"])


def test_the_dbt_yaml_accepts_exactly_the_loaders_reject_reasons():
    assert accepted_values("stg_sparkify__rejects", "reason") == list(REJECT_REASONS)


def test_the_reject_reason_doc_names_every_reason():
    docs = (REPO_ROOT / "models" / "_docs.md").read_text()
    block = docs.split("{% docs reject_reason %}")[1].split("{% enddocs %}")[0]
    named = re.findall(r"[a-z0-9]+(?:_[a-z0-9]+)+|truncated", block)
    assert [word for word in named if word in REJECT_REASONS] == list(REJECT_REASONS)


def test_the_ddl_is_built_from_the_shared_values():
    assert "@" not in DDL.replace("$upgrade$", "")  # every placeholder filled in
    reasons = ", ".join(f"'{reason}'" for reason in REJECT_REASONS)
    assert DDL.count(f"reason in ({reasons})") == 2  # the table, and its upgrade
    kinds = ", ".join(f"'{kind}'" for kind in SOURCE_KINDS)
    assert DDL.count(f"source_kind in ({kinds})") == 2  # raw.loads, raw.load_manifest
    for reason in ("not_an_object", "too_deep", "too_long", "jsonb_refused"):
        assert f"return array['{reason}', " in DDL  # raw.line_refusal()
    for name, pg_type in ADDED_MANIFEST_COLUMNS:
        assert f"('{name}', '{pg_type}')" in DDL
    for table, columns in (("songs", LINE_COLUMNS), ("rejects", REJECT_COLUMNS)):
        for column in columns:
            assert f"    {column.name} {column.pg_type}" in DDL, (table, column)
    assert set(FEED_FOLDERS) == set(SOURCE_KINDS)


def test_the_lakes_parquet_schemas_are_the_landing_tables_columns():
    from sparkify.loader import lake  # pyarrow, imported only here

    for schema, columns in (
        (lake.LINE_SCHEMA, LINE_COLUMNS),
        (lake.REJECT_SCHEMA, REJECT_COLUMNS),
        (lake.LOADS_SCHEMA, LOADS_COLUMNS),
    ):
        assert schema.names == [column.name for column in columns]
    assert str(lake.LINE_SCHEMA.field("payload").type) == "string"
    assert str(lake.REJECT_SCHEMA.field("line").type) == "binary"


def test_read_ahead_keeps_at_most_its_threads_in_flight_and_skips_big_files():
    """The fetches are real calls on real threads; each waits until let go, so
    what is in flight at once can be counted."""
    files = [SourceFile("songs", f"song_data/{n:02d}.json", 10) for n in range(10)]
    big = SourceFile("events", "log_data/big.json", 11)
    lock, let_go = threading.Lock(), threading.Event()
    in_flight, most, fetched = 0, 0, []

    def fetch(file: SourceFile) -> bytes:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
            fetched.append(file.name)
        let_go.wait(10)
        with lock:
            in_flight -= 1
        if file.name.endswith("03.json"):
            raise SkippedFile(file.name, "gone since it was listed")
        return file.name.encode()

    ahead = ReadAhead(fetch, threads=4, whole_bytes=10)
    with ahead.window([*files[:5], big, *files[5:]]):
        deadline = time.monotonic() + 10
        while len(fetched) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # time for a fifth fetch to start, were it allowed
        assert (most, sorted(fetched)) == (4, [f.name for f in files[:4]])
        let_go.set()
        assert ahead.take(files[0]) == b"song_data/00.json"
        assert ahead.take(big) is None  # over whole_bytes: read in its turn
        for file in files[1:3]:
            assert ahead.take(file) == file.name.encode()
        with pytest.raises(SkippedFile):  # its error is raised where it is opened
            ahead.take(files[3])
    assert most == 4
    assert ahead.take(files[9]) is None  # outside a window, files are read as before
