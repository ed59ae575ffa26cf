"""Load planned files into the landing tables with COPY, one batch per transaction.

Guarantees, and where they come from:
- Idempotent: a file whose checksum is already in raw.load_manifest is not read
  again; a file whose checksum changed has its rows replaced.
- All or nothing per batch: a batch's rows, rejects and manifest rows commit in
  one transaction, so a crash leaves no half-loaded file.
- Nothing lost: every non-blank line becomes a row or a reject with a reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from raw_loader.files import FileSource, SourceFile
from raw_loader.lines import JSONB_REFUSED, Chunk, Reject, classify, read_chunks

log = logging.getLogger("load_raw")

# A batch is closed when it reaches either limit: many small song files share a
# transaction (one commit per file is 20x slower), a big log file gets its own.
BATCH_MAX_BYTES = 64 * 1024 * 1024
BATCH_MAX_FILES = 5000

# CSV with control characters as quote and delimiter: valid JSON never holds a raw
# control character, so the payload needs no escaping (the cheapest COPY input).
QUOTE = b"\x01"
DELIMITER = b"\x02"
FAST_COPY = (
    "copy {table} (source_file, line_number, payload) from stdin "
    "with (format csv, quote e'\\x01', delimiter e'\\x02')"
)


@dataclass
class PlannedFile:
    file: SourceFile
    checksum: str
    replaces: bool  # a different version of this file was loaded before


@dataclass
class FileResult:
    file: SourceFile
    checksum: str
    rows: int = 0
    rejects: int = 0


@dataclass
class Plan:
    to_load: list[PlannedFile]
    unchanged: list[SourceFile]


def plan(conn: psycopg.Connection, source: FileSource, files: list[SourceFile]) -> Plan:
    """Compare the files with the manifest: what is new, changed or unchanged."""
    loaded = dict(conn.execute("select source_file, checksum from raw.load_manifest").fetchall())
    to_load: list[PlannedFile] = []
    unchanged: list[SourceFile] = []
    for file in files:
        digest = source.checksum(file)
        previous = loaded.get(file.name)
        if previous == digest:
            unchanged.append(file)
        else:
            to_load.append(PlannedFile(file, digest, replaces=previous is not None))
    return Plan(to_load, unchanged)


def batches(planned: list[PlannedFile]) -> Iterator[list[PlannedFile]]:
    batch: list[PlannedFile] = []
    size = 0
    for item in planned:
        if batch and (size + item.file.size > BATCH_MAX_BYTES or len(batch) >= BATCH_MAX_FILES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.file.size
    if batch:
        yield batch


def load_batch(
    conn: psycopg.Connection, source: FileSource, batch: list[PlannedFile]
) -> list[FileResult]:
    """Load a batch of files of one kind in one transaction."""
    kind = batch[0].file.kind
    table = sql.Identifier("raw", kind)
    with conn.transaction():
        replaced = [item.file.name for item in batch if item.replaces]
        if replaced:
            # The manifest rows are replaced by _write_manifest below.
            _delete_files(conn, kind, replaced)
        try:
            with conn.transaction():  # a savepoint: the fast path may be refused
                results, rejects = _copy_fast(conn, source, batch, table)
        except psycopg.errors.DataError as exc:
            log.info(
                "PostgreSQL refused a line (%s); checking the batch line by line", _first_line(exc)
            )
            results, rejects = _copy_careful(conn, source, batch, table)
        _write_rejects(conn, rejects)
        _write_manifest(conn, results)
    return results


def _delete_files(conn: psycopg.Connection, kind: str, names: list[str]) -> None:
    """Remove the rows and rejects of earlier versions of these files."""
    for table in (kind, "rejects"):
        conn.execute(
            sql.SQL("delete from {} where source_file = any(%s)").format(
                sql.Identifier("raw", table)
            ),
            [names],
        )


def _encode_field(value: bytes) -> bytes:
    return QUOTE + value.replace(QUOTE, QUOTE + QUOTE) + QUOTE


def _copy_fast(
    conn: psycopg.Connection, source: FileSource, batch: list[PlannedFile], table: sql.Composable
) -> tuple[list[FileResult], list[tuple[str, Reject]]]:
    """Stream every candidate row of the batch through one COPY."""
    results: list[FileResult] = []
    rejects: list[tuple[str, Reject]] = []
    with conn.cursor() as cur, cur.copy(sql.SQL(FAST_COPY).format(table=table)) as copy:
        for item in batch:
            result = FileResult(item.file, item.checksum)
            name = _encode_field(item.file.name.encode("utf-8")) + DELIMITER
            for chunk in _chunks(source, item.file):
                copy.write(
                    b"".join(
                        [
                            name + b"%d" % number + DELIMITER + _encode_field(line) + b"\n"
                            for number, line in chunk.rows
                        ]
                    )
                )
                result.rows += len(chunk.rows)
                result.rejects += len(chunk.rejects)
                rejects.extend((item.file.name, reject) for reject in chunk.rejects)
            results.append(result)
    return results, rejects


def _copy_careful(
    conn: psycopg.Connection, source: FileSource, batch: list[PlannedFile], table: sql.Composable
) -> tuple[list[FileResult], list[tuple[str, Reject]]]:
    """The slow path: classify each line, and let PostgreSQL judge what Python accepts."""
    results: list[FileResult] = []
    rejects: list[tuple[str, Reject]] = []
    conn.execute(
        "create temporary table if not exists candidate_lines "
        "(line_number integer, line text) on commit drop"
    )
    for item in batch:
        result = FileResult(item.file, item.checksum)
        for chunk in _chunks(source, item.file):
            file_rejects = list(chunk.rejects)
            accepted: list[tuple[int, str]] = []
            last_number = chunk.rows[-1][0] if chunk.rows else None
            for number, line in chunk.rows:
                reject = classify(
                    number, line, may_be_truncated=chunk.ends_unterminated and number == last_number
                )
                if reject is None:
                    accepted.append((number, line.decode("utf-8")))
                else:
                    file_rejects.append(reject)
            refused = _land_judged_by_postgres(conn, table, item.file.name, accepted)
            by_number = dict(chunk.rows)
            file_rejects.extend(
                Reject(number, by_number[number], JSONB_REFUSED, detail)
                for number, detail in refused
            )
            result.rows += len(accepted) - len(refused)
            result.rejects += len(file_rejects)
            rejects.extend((item.file.name, reject) for reject in file_rejects)
        results.append(result)
    return results, rejects


def _land_judged_by_postgres(
    conn: psycopg.Connection, table: sql.Composable, name: str, accepted: list[tuple[int, str]]
) -> list[tuple[int, str]]:
    """Insert the lines jsonb accepts; return (line_number, why) for those it refuses."""
    conn.execute("truncate candidate_lines")
    with conn.cursor() as cur:
        # psycopg's text COPY escapes every value, so any text is safe here; and
        # this path only runs for a chunk the fast path could not land.
        with cur.copy("copy candidate_lines (line_number, line) from stdin") as copy:
            for number, text in accepted:
                copy.write_row((number, text))
        cur.execute(
            "create temporary table judged on commit drop as "
            "select line_number, line, raw.jsonb_error(line) as error from candidate_lines"
        )
        cur.execute(
            sql.SQL(
                "insert into {table} (source_file, line_number, payload) "
                "select %s, line_number, line::jsonb from judged where error is null"
            ).format(table=table),
            [name],
        )
        refused = cur.execute(
            "select line_number, error from judged where error is not null order by line_number"
        ).fetchall()
        cur.execute("drop table judged")
    return refused


def _chunks(source: FileSource, file: SourceFile) -> Iterable[Chunk]:
    with source.open(file) as stream:
        yield from read_chunks(stream, whole_document=file.kind == "songs")


def _write_rejects(conn: psycopg.Connection, rejects: list[tuple[str, Reject]]) -> None:
    if not rejects:
        return
    with (
        conn.cursor() as cur,
        cur.copy(
            "copy raw.rejects (source_file, line_number, line, reason, detail) from stdin"
        ) as copy,
    ):
        for name, reject in rejects:
            copy.write_row((name, reject.line_number, reject.line, reject.reason, reject.detail))


def _write_manifest(conn: psycopg.Connection, results: list[FileResult]) -> None:
    conn.execute(
        "delete from raw.load_manifest where source_file = any(%s)",
        [[result.file.name for result in results]],
    )
    with (
        conn.cursor() as cur,
        cur.copy(
            "copy raw.load_manifest (source_file, source_kind, checksum, size_bytes, row_count, "
            "reject_count) from stdin"
        ) as copy,
    ):
        for r in results:
            copy.write_row((r.file.name, r.file.kind, r.checksum, r.file.size, r.rows, r.rejects))


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

    def add(self, results: list[FileResult]) -> None:
        self.files += len(results)
        self.bytes += sum(r.file.size for r in results)
        self.rows += sum(r.rows for r in results)
        for r in results:
            self.rows_by_kind[r.file.kind] += r.rows
        self.rejects += sum(r.rejects for r in results)
        now = time.monotonic()
        if now - self.last >= self.every_seconds or self.files == self.total_files:
            self.last = now
            elapsed = max(now - self.started, 1e-9)
            share = 100 * self.bytes / self.total_bytes if self.total_bytes else 100.0
            log.info(
                "%d/%d files (%.0f%%), %d rows, %d rejects, %.0f rows/s",
                self.files,
                self.total_files,
                share,
                self.rows,
                self.rejects,
                self.rows / elapsed,
            )
