"""The batch transaction: a batch of files lands with COPY as one load.

Guarantees, and where they come from:
- All or nothing per batch: a batch's rows, rejects and manifest rows commit in
  one transaction, so a crash leaves no half-loaded file.
- One batch is one load: it takes a load id when it starts, stamps every row,
  reject and manifest row it writes with it, and writes its raw.loads row (its
  counts) in the same transaction. A load id in raw.loads means its rows are
  all there; a batch that fails leaves no raw.loads row and no rows.
- Nothing lost: every non-blank line becomes a row or a reject with a reason.
- Each byte read once: a new file is hashed while it streams into COPY.
- A listed file that cannot be read at all (gone since it was listed, archived:
  a SkippedFile) is left out, and the batch loaded again without it (`skipping`).
(What is loaded at all, and why a re-run is a no-op: planning.py.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from sparkify.loader.copy_encoding import (
    COPY_HEADER,
    COPY_TRAILER,
    FAST_COPY,
    BlockWriter,
    copy_numbered,
    copy_row,
    copy_rows,
    name_field,
)
from sparkify.loader.files import FileSource, SkippedFile, SourceFile
from sparkify.loader.lines import DEFAULT_MAX_LINE_BYTES, Reject, classify
from sparkify.loader.planning import PlannedFile
from sparkify.loader.reading import FileResult, ReadCallback, read_file
from sparkify.loader.sender import QueuedWriter
from sparkify.messages import one_line

log = logging.getLogger("load_raw")

# What PostgreSQL says when it refuses a line in a COPY: the batch then takes
# the careful path. Data errors (bad JSON), and program limits: "stack depth
# limit exceeded" (54001, nesting too deep) and "string too long to represent
# as jsonb string" (54000), which psycopg counts as OperationalErrors.
LINE_REFUSED = (
    psycopg.errors.DataError,
    psycopg.errors.ProgramLimitExceeded,
    psycopg.errors.StatementTooComplex,
)

Connection = psycopg.Connection[Any]
FileRejects = list[tuple[str, Reject]]  # (file name, reject)
Skipped = tuple[str, str]  # (file name, why it was skipped)


def skipping(
    load: Callable[[list[PlannedFile]], list[FileResult]], batch: list[PlannedFile]
) -> tuple[list[FileResult], list[Skipped]]:
    """load(batch), leaving out each file that turns out to be unreadable.

    A SkippedFile rolls its try back whole (load is one transaction, or the
    lake's uncommitted files), so no byte of the skipped file lands and no
    manifest row names it: the next run tries it again. The rest of the batch
    is then loaded without it. Skips are rare, so re-reading the others is cheap
    next to losing the run. The one skip mechanism, for PostgreSQL and the lake.
    """
    skipped: list[Skipped] = []
    while batch:
        try:
            return load(batch), skipped
        except SkippedFile as exc:
            left = [item for item in batch if item.file.name != exc.name]
            if len(left) == len(batch):  # not a file of this batch: a bug, say it
                raise
            skipped.append((exc.name, exc.reason))
            batch = left
    return [], skipped


def load_batch(
    conn: Connection,
    source: FileSource,
    batch: list[PlannedFile],
    on_read: ReadCallback | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> list[FileResult]:
    """Load a batch of files of one kind in one transaction: one load."""
    kind = batch[0].file.kind
    table = sql.Identifier("raw", kind)
    with conn.transaction():
        load_id = _next_load_id(conn)
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
                "PostgreSQL refused a line (%s); checking the batch line by line", one_line(exc)
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


def prune(conn: Connection, kind: str, names: list[str]) -> int:
    """Remove vanished files of one kind: their rows, rejects and manifest rows,
    in one transaction that is one load. Its raw.loads row lands no file and
    counts the pruned files in replaced_file_count (files whose rows were
    replaced or removed), so dbt rebuilds what they fed. Returns its load id."""
    with conn.transaction():
        load_id = _next_load_id(conn)
        _delete_files(conn, kind, names)
        conn.execute("delete from raw.load_manifest where source_file = any(%s)", [names])
        conn.execute(
            "insert into raw.loads (load_id, source_kind, file_count, row_count, reject_count, "
            "replaced_file_count) values (%s, %s, 0, 0, 0, %s)",
            [load_id, kind, len(names)],
        )
    log.debug("load %d: pruned %d %s files", load_id, len(names), kind)
    return load_id


def restamp(conn: Connection, files: list[SourceFile]) -> None:
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


def _next_load_id(conn: Connection) -> int:
    row = conn.execute("select nextval(pg_get_serial_sequence('raw.loads', 'load_id'))").fetchone()
    assert row is not None  # nextval always returns a row
    return int(row[0])


def _write_load(conn: Connection, kind: str, results: list[FileResult], load_id: int) -> None:
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


def _delete_files(conn: Connection, kind: str, names: list[str]) -> None:
    """Remove the rows and rejects of earlier versions of these files."""
    for table in (kind, "rejects"):
        conn.execute(
            sql.SQL("delete from {} where source_file = any(%s)").format(
                sql.Identifier("raw", table)
            ),
            [names],
        )


@dataclass
class _Suspects:
    """Lines of one file set apart for an exact judgement after the fast COPY."""

    result: FileResult
    lines: list[tuple[int, bytes]]


def _copy_fast(
    conn: Connection,
    source: FileSource,
    batch: list[PlannedFile],
    table: sql.Composable,
    load_id: int,
    on_read: ReadCallback | None,
    max_line_bytes: int,
) -> tuple[list[FileResult], FileRejects]:
    """Stream every candidate row of the batch through one COPY."""
    results: list[FileResult] = []
    rejects: FileRejects = []
    suspects: list[_Suspects] = []
    with (
        source.reading_ahead([item.file for item in batch]),
        conn.cursor() as cur,
        cur.copy(sql.SQL(FAST_COPY).format(table=table), writer=QueuedWriter(cur)) as copy,
    ):
        writer = BlockWriter(copy)
        writer.write(COPY_HEADER)
        for item in batch:
            result = FileResult(item.file)
            file_field = name_field(item.file.name, load_id)
            file_suspects: list[tuple[int, bytes]] = []
            for chunk in read_file(source, item.file, result, on_read, max_line_bytes):
                if chunk.clean_lines:
                    first, lines = chunk.first_line, chunk.clean_lines
                    writer.write(copy_rows(file_field, range(first, first + len(lines)), lines))
                elif len(chunk.rows) == 1:  # a song file: one row, no per-batch machinery
                    writer.write(copy_row(file_field, *chunk.rows[0]))
                elif chunk.rows:
                    writer.write(copy_numbered(file_field, chunk.rows))
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
    conn: Connection,
    source: FileSource,
    batch: list[PlannedFile],
    table: sql.Composable,
    load_id: int,
    max_line_bytes: int,
) -> tuple[list[FileResult], FileRejects]:
    """The slow path: classify each line, and let PostgreSQL judge what Python accepts."""
    results: list[FileResult] = []
    rejects: FileRejects = []
    with source.reading_ahead([item.file for item in batch]):
        for item in batch:
            results.append(
                _file_careful(conn, source, item, table, load_id, max_line_bytes, rejects)
            )
    return results, rejects


def _file_careful(
    conn: Connection,
    source: FileSource,
    item: PlannedFile,
    table: sql.Composable,
    load_id: int,
    max_line_bytes: int,
    rejects: FileRejects,
) -> FileResult:
    """One file on the slow path; its rejects are added to `rejects`."""
    result = FileResult(item.file)
    for chunk in read_file(source, item.file, result, None, max_line_bytes):
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
    return result


def _land_careful(
    conn: Connection,
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
        file_field = name_field(name, load_id)
        try:
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(sql.SQL(FAST_COPY).format(table=table)) as copy,
            ):
                copy.write(COPY_HEADER + copy_numbered(file_field, plain) + COPY_TRAILER)
            landed = len(plain)
        except LINE_REFUSED:
            doubtful = plain + doubtful
    refused = _land_judged_by_postgres(conn, table, name, load_id, doubtful) if doubtful else []
    rejects.extend(refused)
    rejects.sort(key=lambda reject: reject.line_number)
    return landed + len(doubtful) - len(refused), rejects


def _land_judged_by_postgres(
    conn: Connection,
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


def _write_rejects(conn: Connection, rejects: FileRejects, load_id: int) -> None:
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
    conn: Connection, results: list[FileResult], load_id: int, feed_root: str
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
    row = conn.execute("select now()").fetchone()
    assert row is not None  # now() always returns a row
    now = row[0]
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
