"""Load planned files into the landing tables with COPY, one batch per transaction.

Guarantees, and where they come from:
- Idempotent: a file whose checksum is already in raw.load_manifest is not read
  again; a file whose checksum changed has its rows replaced. The manifest also
  keeps each file's size and modification stamp: when both are as recorded the
  file is not even hashed; when either differs the checksum decides. (An object
  in S3 adds its ETag to the stamp.)
- One feed per database: each file's feed root (its folder or s3:// prefix) is
  in the manifest, and a file of another feed is not replaced unless asked.
- All or nothing per batch: a batch's rows, rejects and manifest rows commit in
  one transaction, so a crash leaves no half-loaded file.
- One batch is one load: it takes a load id when it starts, stamps every row,
  reject and manifest row it writes with it, and writes its raw.loads row (its
  counts) in the same transaction. A load id in raw.loads means its rows are
  all there; a batch that fails leaves no raw.loads row and no rows.
- Nothing lost: every non-blank line becomes a row or a reject with a reason.
- Each byte read once: a new file is hashed while it streams into COPY.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat

import psycopg
from psycopg import sql

from raw_loader.files import FileSource, HashedFile, SourceFile, read_whole
from raw_loader.lines import (
    DEFAULT_MAX_LINE_BYTES,
    Chunk,
    Reject,
    classify,
    document_chunk,
    read_chunks,
)
from raw_loader.sender import QueuedWriter

log = logging.getLogger("load_raw")

# A batch is closed when it reaches either limit: many small song files share a
# transaction (one commit per file is 20x slower), a big log file gets its own.
# 16 MB keeps batches small enough to spread well over parallel workers.
BATCH_MAX_BYTES = 16 * 1024 * 1024
BATCH_MAX_FILES = 5000
# Rows are handed to COPY in blocks of about this size: few, large writes.
COPY_BLOCK_BYTES = 1024 * 1024

# Binary COPY: each field is its length, then its bytes. A line goes as it is,
# whatever bytes it holds (nothing to escape), and the server does not scan the
# rows for delimiters and quotes: 5-10% less backend CPU than CSV. A row is
# its field count, then the payload (jsonb's binary input: a version byte, then
# the text), the load id (int8), the file's name and the line number. The load
# id and the name are the same for every line of a file: sent as one piece.
FAST_COPY = (
    "copy {table} (payload, load_id, source_file, line_number) from stdin with (format binary)"
)
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, no flags, no extension
COPY_TRAILER = b"\xff\xff"
_ROW_START = struct.Struct("!hiB").pack  # 4 fields; the payload's length; jsonb version 1
_FIELD_COUNT = 4
_INT4 = struct.Struct("!i").pack
_INT8_FIELD = struct.Struct("!iq").pack  # length 8, then the value

# What PostgreSQL says when it refuses a line in a COPY: the batch then takes
# the careful path. Data errors (bad JSON), and program limits: "stack depth
# limit exceeded" (54001, nesting too deep) and "string too long to represent
# as jsonb string" (54000), which psycopg counts as OperationalErrors.
LINE_REFUSED = (
    psycopg.errors.DataError,
    psycopg.errors.ProgramLimitExceeded,
    psycopg.errors.StatementTooComplex,
)

# Called with the number of bytes read so far of a file: progress inside big files.
ReadCallback = Callable[[int], None]


@dataclass
class PlannedFile:
    file: SourceFile
    # The checksum found when comparing with an earlier version; None for a new
    # file (it is hashed while it loads). What lands is always the checksum of
    # the bytes actually read.
    checksum: str | None
    replaces: bool  # a different version of this file was loaded before


@dataclass
class FileResult:
    file: SourceFile
    checksum: str = ""
    rows: int = 0
    rejects: int = 0
    load_id: int = 0  # the load (batch transaction) that landed this version
    replaces: bool = False  # it replaced a different, earlier version


@dataclass
class Plan:
    to_load: list[PlannedFile]
    unchanged: list[SourceFile]
    # Unchanged content under a new size/stamp: the manifest's stamp is updated.
    restamped: list[SourceFile] = field(default_factory=list)
    # (kind, name) of files in the manifest, of a kind listed, no longer in the feed.
    vanished: list[tuple[str, str]] = field(default_factory=list)
    # (name, its feed root) of files to be replaced that were loaded from another feed.
    other_feed: list[tuple[str, str]] = field(default_factory=list)


def plan(
    conn: psycopg.Connection,
    source: FileSource,
    files: list[SourceFile],
    *,
    kinds: Collection[str] = ("songs", "events"),
    verify: bool = False,
    unlisted: Collection[str] = (),
) -> Plan:
    """Compare the files with the manifest: what is new, changed, unchanged or gone.

    The stat skip: a file whose size and modification time are as recorded is
    taken as unchanged without being read, which makes a re-run over 100k files
    take seconds. A file rewritten with its old size and time (cp -p, rsync -t,
    a restore from tar) escapes it; `verify` hashes every file instead.

    Manifest files of `kinds` that are not listed have vanished from the feed,
    unless they are under a path that could not be listed (`unlisted`): those
    are unknown, not gone. Files of another feed root are not this feed's: they
    never vanish from it; one that would be replaced is named in `other_feed`.
    """
    roots = {kind: source.feed_root(kind) for kind in kinds if kind in source.roots}
    loaded = {
        name: (checksum, size, mtime_ns, etag or "", kind, root)
        for name, checksum, size, mtime_ns, etag, kind, root in conn.execute(
            "select source_file, checksum, size_bytes, mtime_ns, etag, source_kind, feed_root "
            "from raw.load_manifest"
        )
    }
    result = Plan(to_load=[], unchanged=[])
    listed = {file.name for file in files}
    hidden = tuple(f"{name}/" for name in unlisted)
    result.vanished = sorted(
        (kind, name)
        for name, (*_, kind, root) in loaded.items()
        if kind in kinds
        and root in (None, roots.get(kind))
        and name not in listed
        and name not in unlisted
        and not name.startswith(hidden)
    )
    for file in files:
        previous = loaded.get(file.name)
        if previous is None:
            result.to_load.append(PlannedFile(file, None, replaces=False))
            continue
        checksum, size, mtime_ns, etag, _, root = previous
        stamp = (file.size, file.mtime_ns, file.etag)
        if not verify and file.mtime_ns and (size, mtime_ns, etag) == stamp:
            result.unchanged.append(file)
            continue
        digest = source.checksum(file)
        if digest == checksum:
            result.unchanged.append(file)
            result.restamped.append(file)
        else:
            result.to_load.append(PlannedFile(file, digest, replaces=True))
            if root is not None and root != roots.get(file.kind):
                result.other_feed.append((file.name, root))
    return result


def prune(conn: psycopg.Connection, kind: str, names: list[str]) -> int:
    """Remove vanished files of one kind: their rows, rejects and manifest rows,
    in one transaction that is one load. Its raw.loads row lands no file and
    counts the pruned files in replaced_file_count (files whose rows were
    replaced or removed), so dbt rebuilds what they fed. Returns its load id."""
    with conn.transaction():
        (load_id,) = conn.execute(
            "select nextval(pg_get_serial_sequence('raw.loads', 'load_id'))"
        ).fetchone()
        _delete_files(conn, kind, names)
        conn.execute("delete from raw.load_manifest where source_file = any(%s)", [names])
        conn.execute(
            "insert into raw.loads (load_id, source_kind, file_count, row_count, reject_count, "
            "replaced_file_count) values (%s, %s, 0, 0, 0, %s)",
            [load_id, kind, len(names)],
        )
    log.debug("load %d: pruned %d %s files", load_id, len(names), kind)
    return load_id


def restamp(conn: psycopg.Connection, files: list[SourceFile]) -> None:
    """Record the new size and stamp of files whose content did not change."""
    if not files:
        return
    conn.execute(
        "update raw.load_manifest as m set size_bytes = f.size_bytes, mtime_ns = f.mtime_ns, "
        "etag = f.etag from unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[]) "
        "as f (source_file, size_bytes, mtime_ns, etag) where m.source_file = f.source_file",
        [
            [f.name for f in files],
            [f.size for f in files],
            [f.mtime_ns or None for f in files],
            [f.etag or None for f in files],
        ],
    )


def batches(
    planned: list[PlannedFile],
    max_bytes: int = BATCH_MAX_BYTES,
    max_files: int = BATCH_MAX_FILES,
) -> Iterator[list[PlannedFile]]:
    """Consecutive files of one kind, up to either limit (a bigger file goes alone)."""
    batch: list[PlannedFile] = []
    size = 0
    for item in planned:
        if batch and (
            size + item.file.size > max_bytes
            or len(batch) >= max_files
            or item.file.kind != batch[0].file.kind
        ):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.file.size
    if batch:
        yield batch


def load_batch(
    conn: psycopg.Connection,
    source: FileSource,
    batch: list[PlannedFile],
    on_read: ReadCallback | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> list[FileResult]:
    """Load a batch of files of one kind in one transaction: one load."""
    kind = batch[0].file.kind
    table = sql.Identifier("raw", kind)
    with conn.transaction():
        (load_id,) = conn.execute(
            "select nextval(pg_get_serial_sequence('raw.loads', 'load_id'))"
        ).fetchone()
        replaced = [item.file.name for item in batch if item.replaces]
        if replaced:
            # The manifest rows are replaced by _write_manifest below.
            _delete_files(conn, kind, replaced)
        try:
            with conn.transaction():  # a savepoint: the fast path may be refused
                results, rejects = _copy_fast(
                    conn, source, batch, table, load_id, on_read, max_line_bytes
                )
        except LINE_REFUSED as exc:
            log.info(
                "PostgreSQL refused a line (%s); checking the batch line by line", _first_line(exc)
            )
            results, rejects = _copy_careful(conn, source, batch, table, load_id, max_line_bytes)
        for item, result in zip(batch, results, strict=True):
            result.load_id, result.replaces = load_id, item.replaces
        _write_rejects(conn, rejects, load_id)
        _write_manifest(conn, results, load_id, source.feed_root(kind))
        _write_load(conn, kind, results, load_id)
    log.debug(
        "load %d: %d %s files, %d rows, %d rejects",
        load_id,
        len(results),
        kind,
        sum(r.rows for r in results),
        sum(r.rejects for r in results),
    )
    return results


def _write_load(
    conn: psycopg.Connection, kind: str, results: list[FileResult], load_id: int
) -> None:
    """The load's raw.loads row, in the batch's transaction: one commit makes the
    rows and their load visible together."""
    conn.execute(
        "insert into raw.loads (load_id, source_kind, file_count, row_count, reject_count, "
        "replaced_file_count) values (%s, %s, %s, %s, %s, %s)",
        [
            load_id,
            kind,
            len(results),
            sum(r.rows for r in results),
            sum(r.rejects for r in results),
            sum(r.replaces for r in results),
        ],
    )


def _delete_files(conn: psycopg.Connection, kind: str, names: list[str]) -> None:
    """Remove the rows and rejects of earlier versions of these files."""
    for table in (kind, "rejects"):
        conn.execute(
            sql.SQL("delete from {} where source_file = any(%s)").format(
                sql.Identifier("raw", table)
            ),
            [names],
        )


def _name_field(name: str, load_id: int) -> bytes:
    """What follows the payload in every row of a file: the load id field, the
    name field, then the line number's length."""
    encoded = name.encode("utf-8")
    return _INT8_FIELD(8, load_id) + _INT4(len(encoded)) + encoded + _INT4(4)


def _copy_rows(name_field: bytes, numbers: Sequence[int], lines: Sequence[bytes]) -> bytes:
    """COPY input for lines of one file, with their line numbers.

    Joined from four pieces a row (start, line, load id and name, number) by
    C-level iterators: no Python code runs per line.
    """
    starts = map(_ROW_START, repeat(_FIELD_COUNT), map((1).__add__, map(len, lines)), repeat(1))
    return b"".join(
        chain.from_iterable(zip(starts, lines, repeat(name_field), map(_INT4, numbers)))
    )


def _copy_numbered(name_field: bytes, rows: list[tuple[int, bytes]]) -> bytes:
    return _copy_rows(name_field, [number for number, _ in rows], [line for _, line in rows])


class _BlockWriter:
    """Gathers small pieces of COPY input and hands them over in large blocks."""

    def __init__(self, copy: psycopg.Copy):
        self.copy = copy
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        if len(data) >= COPY_BLOCK_BYTES:
            self.flush()
            self.copy.write(data)
            return
        self.parts.append(data)
        self.size += len(data)
        if self.size >= COPY_BLOCK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.copy.write(b"".join(self.parts))
            self.parts, self.size = [], 0


@dataclass
class _Suspects:
    """Lines of one file set apart for an exact judgement after the fast COPY."""

    result: FileResult
    lines: list[tuple[int, bytes]]


def _copy_fast(
    conn: psycopg.Connection,
    source: FileSource,
    batch: list[PlannedFile],
    table: sql.Composable,
    load_id: int,
    on_read: ReadCallback | None,
    max_line_bytes: int,
) -> tuple[list[FileResult], list[tuple[str, Reject]]]:
    """Stream every candidate row of the batch through one COPY."""
    results: list[FileResult] = []
    rejects: list[tuple[str, Reject]] = []
    suspects: list[_Suspects] = []
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL(FAST_COPY).format(table=table), writer=QueuedWriter(cur)) as copy,
    ):
        writer = _BlockWriter(copy)
        writer.write(COPY_HEADER)
        for item in batch:
            result = FileResult(item.file)
            name_field = _name_field(item.file.name, load_id)
            file_suspects: list[tuple[int, bytes]] = []
            for chunk in _read_file(source, item.file, result, on_read, max_line_bytes):
                if chunk.clean_lines:
                    first, lines = chunk.first_line, chunk.clean_lines
                    writer.write(_copy_rows(name_field, range(first, first + len(lines)), lines))
                elif chunk.rows:
                    writer.write(_copy_numbered(name_field, chunk.rows))
                result.rows += chunk.row_count
                result.rejects += len(chunk.rejects)
                rejects.extend((item.file.name, reject) for reject in chunk.rejects)
                file_suspects.extend(chunk.suspects)
            if file_suspects:
                suspects.append(_Suspects(result, file_suspects))
            results.append(result)
        writer.write(COPY_TRAILER)
        writer.flush()
    for judged in suspects:
        landed, file_rejects = _land_careful(
            conn, table, judged.result.file.name, load_id, [], judged.lines, last_line=None
        )
        judged.result.rows += landed
        judged.result.rejects += len(file_rejects)
        rejects.extend((judged.result.file.name, reject) for reject in file_rejects)
    return results, rejects


def _copy_careful(
    conn: psycopg.Connection,
    source: FileSource,
    batch: list[PlannedFile],
    table: sql.Composable,
    load_id: int,
    max_line_bytes: int,
) -> tuple[list[FileResult], list[tuple[str, Reject]]]:
    """The slow path: classify each line, and let PostgreSQL judge what Python accepts."""
    results: list[FileResult] = []
    rejects: list[tuple[str, Reject]] = []
    for item in batch:
        result = FileResult(item.file)
        for chunk in _read_file(source, item.file, result, None, max_line_bytes):
            rows = chunk.numbered()
            last = None
            if chunk.ends_unterminated and (rows or chunk.suspects):
                last = max(number for number, _ in rows + chunk.suspects)
            landed, file_rejects = _land_careful(
                conn, table, item.file.name, load_id, rows, chunk.suspects, last_line=last
            )
            file_rejects = chunk.rejects + file_rejects
            result.rows += landed
            result.rejects += len(file_rejects)
            rejects.extend((item.file.name, reject) for reject in file_rejects)
        results.append(result)
    return results, rejects


def _read_file(
    source: FileSource,
    file: SourceFile,
    result: FileResult,
    on_read: ReadCallback | None,
    max_line_bytes: int,
) -> Iterator[Chunk]:
    """The chunks of one file, read once; sets result.checksum when it is read."""
    if file.kind == "songs":  # one small document: read at once
        data, result.checksum = read_whole(source, file)
        yield document_chunk(data, max_line_bytes)
        return
    with HashedFile(source, file) as hashed:
        read = 0
        for chunk in read_chunks(
            hashed.stream, whole_document=False, max_line_bytes=max_line_bytes
        ):
            yield chunk
            read += chunk.size
            if on_read is not None:
                on_read(read)
        result.checksum = hashed.checksum()


def _land_careful(
    conn: psycopg.Connection,
    table: sql.Composable,
    name: str,
    load_id: int,
    rows: list[tuple[int, bytes]],
    suspects: list[tuple[int, bytes]],
    *,
    last_line: int | None,
) -> tuple[int, list[Reject]]:
    """Land the lines of one file that are jsonb objects; return (landed, rejects).

    Python's json judges first. What it accepts is copied in one go (in a
    savepoint); only if PostgreSQL refuses some of it, or for suspect lines, is
    each line judged by PostgreSQL's own jsonb parser.
    """
    rejects: list[Reject] = []
    plain: list[tuple[int, bytes]] = []
    doubtful: list[tuple[int, bytes]] = []
    for lines, accepted in ((rows, plain), (suspects, doubtful)):
        for number, line in lines:
            reject = classify(number, line, may_be_truncated=number == last_line)
            if reject is None:
                accepted.append((number, line))
            else:
                rejects.append(reject)
    landed = 0
    if plain:
        name_field = _name_field(name, load_id)
        try:
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(sql.SQL(FAST_COPY).format(table=table)) as copy,
            ):
                copy.write(COPY_HEADER + _copy_numbered(name_field, plain) + COPY_TRAILER)
            landed = len(plain)
        except LINE_REFUSED:
            doubtful = plain + doubtful
    refused = _land_judged_by_postgres(conn, table, name, load_id, doubtful) if doubtful else []
    rejects.extend(refused)
    rejects.sort(key=lambda reject: reject.line_number)
    return landed + len(doubtful) - len(refused), rejects


def _land_judged_by_postgres(
    conn: psycopg.Connection,
    table: sql.Composable,
    name: str,
    load_id: int,
    lines: list[tuple[int, bytes]],
) -> list[Reject]:
    """Insert the lines jsonb accepts as objects; return rejects for the others.

    One statement, no temporary table (the loader role needs no TEMP privilege):
    raw.line_refusal judges each line once, the lines it does not refuse are
    inserted, and the refusals come back.
    """
    texts = [line.decode("utf-8") for _, line in lines]
    refusals = conn.execute(
        sql.SQL(
            "with judged as materialized ("
            " select line_number, line, raw.line_refusal(line) as refusal"
            " from unnest(%(numbers)s::integer[], %(lines)s::text[]) as c (line_number, line)"
            "), landed as ("
            " insert into {table} (source_file, line_number, payload, load_id)"
            " select %(name)s, line_number, line::jsonb, %(load_id)s"
            " from judged where refusal is null"
            ") select line_number, refusal[1], refusal[2] from judged"
            " where refusal is not null order by line_number"
        ).format(table=table),
        {
            "numbers": [number for number, _ in lines],
            "lines": texts,
            "name": name,
            "load_id": load_id,
        },
    ).fetchall()
    by_number = dict(lines)
    return [
        Reject(number, by_number[number], reason, detail) for number, reason, detail in refusals
    ]


def _write_rejects(
    conn: psycopg.Connection, rejects: list[tuple[str, Reject]], load_id: int
) -> None:
    if not rejects:
        return
    with (
        conn.cursor() as cur,
        cur.copy(
            "copy raw.rejects (source_file, line_number, line, reason, detail, load_id) "
            "from stdin with (format binary)"
        ) as copy,
    ):
        copy.set_types(["text", "int4", "bytea", "text", "text", "int8"])
        for name, reject in rejects:
            copy.write_row(
                (name, reject.line_number, reject.line, reject.reason, reject.detail, load_id)
            )


def _write_manifest(
    conn: psycopg.Connection, results: list[FileResult], load_id: int, feed_root: str
) -> None:
    names = [result.file.name for result in results]
    # A replaced file keeps the time it was first loaded; a new one was first
    # loaded now (the transaction's start, like loaded_at's default).
    first_loaded = dict(
        conn.execute(
            "delete from raw.load_manifest where source_file = any(%s) "
            "returning source_file, coalesce(first_loaded_at, loaded_at)",
            [names],
        ).fetchall()
    )
    (now,) = conn.execute("select now()").fetchone()
    with (
        conn.cursor() as cur,
        cur.copy(
            "copy raw.load_manifest (source_file, source_kind, checksum, size_bytes, mtime_ns, "
            "etag, row_count, reject_count, first_loaded_at, load_id, feed_root) from stdin"
        ) as copy,
    ):
        for r in results:
            copy.write_row(
                (
                    r.file.name,
                    r.file.kind,
                    r.checksum,
                    r.file.size,
                    r.file.mtime_ns or None,
                    r.file.etag or None,
                    r.rows,
                    r.rejects,
                    first_loaded.get(r.file.name, now),
                    load_id,
                    feed_root,
                )
            )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@dataclass
class Progress:
    """Logs progress at most every few seconds, so long loads show they are alive."""

    total_files: int
    total_bytes: int
    every_seconds: float = 2.0
    files: int = 0
    bytes: int = 0
    rows: int = 0
    rejects: int = 0

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        self.last = self.started
        self.rows_by_kind: dict[str, int] = {"songs": 0, "events": 0}
        self.load_ids: set[int] = set()  # the loads committed so far
        self.in_flight: dict[object, int] = {}  # bytes read of files not yet committed

    def reading(self, worker: object, read: int) -> None:
        """A worker has read this many bytes of the batch it is loading."""
        self.in_flight[worker] = read
        self._maybe_log()

    def add(self, results: list[FileResult], worker: object = None) -> None:
        self.in_flight.pop(worker, None)
        self.files += len(results)
        self.bytes += sum(r.file.size for r in results)
        self.rows += sum(r.rows for r in results)
        for r in results:
            self.rows_by_kind[r.file.kind] += r.rows
        self.rejects += sum(r.rejects for r in results)
        self.load_ids.update(r.load_id for r in results)
        self._maybe_log(done=self.files == self.total_files)

    def _maybe_log(self, done: bool = False) -> None:
        now = time.monotonic()
        if now - self.last < self.every_seconds and not done:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        read = self.bytes + sum(self.in_flight.values())
        share = min(100.0, 100 * read / self.total_bytes) if self.total_bytes else 100.0
        log.info(
            "%d/%d files (%.0f%% read), %d loads and %d rows committed, %d rejects, %.0f rows/s",
            self.files,
            self.total_files,
            share,
            len(self.load_ids),
            self.rows,
            self.rejects,
            self.rows / elapsed,
        )
