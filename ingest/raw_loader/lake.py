"""Land the feed as Parquet files in a lake folder, for Spark (`load_raw.py --lake`).

The same contract as the PostgreSQL landing tables (schema.py), kept with files
instead of transactions:

- Raw is raw: every non-blank line (a song file: its one document) lands as its
  text, with its file's name, its line number, when it landed and its load id;
  a line that cannot be a JSON object is a reject with its bytes and reason.
  The lines are judged as PostgreSQL's jsonb would judge them (lines.py's
  triage, then Python's parser standing in for jsonb's, with jsonb's own
  refusals: a \\u0000 escape, a lone surrogate), so both engines land the
  same rows.
- One batch is one load. Its rows, rejects and manifest rows are written as
  files named with its load id; the load's row in loads/ is written last, by
  an atomic rename: that rename is the commit. Readers take only the files of
  loads that are in loads/ (models/staging/sparkify, the spark sources), so a
  load killed midway is invisible, and the next run deletes its files.
- Exactly once: load_manifest/ keeps each file's checksum, size and stamp
  (an object's ETag included) and its feed root; the run plans with
  planning.plan_files, as PostgreSQL's loader does, so a re-run lands only new
  or changed files, and a file of another feed is refused unless asked. A
  changed file's new version is a new load; readers take each file's rows
  from the load of its current manifest row only, so the old version's rows
  drop out in the same commit. --prune writes a manifest row that marks the
  file removed. A file whose content is unchanged under a new stamp is
  restamped: a load of manifest rows only, which keep the load_id of the
  file's rows and record their own load in recorded_by_load.
- One loader at a time per lake: an exclusive lock on LAKE/.lock.

Layout, one folder per landing table (each a Spark external table):
    LAKE/{songs,events,rejects,load_manifest,loads}/load-<id>[-<n>].parquet
Files whose name starts with '.' are ignored by Spark: a file is written under
such a name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from raw_loader.batch import Skipped, skipping
from raw_loader.columns import LINE_COLUMNS, LOADS_COLUMNS, REJECT_COLUMNS, Column
from raw_loader.contract import JSONB_REFUSED, SOURCE_KINDS
from raw_loader.files import FileSource, SourceFile
from raw_loader.lines import DEFAULT_MAX_LINE_BYTES, Reject, classify
from raw_loader.options import LoadOptions
from raw_loader.planning import (
    ManifestEntry,
    Plan,
    PlannedFile,
    batches,
    check_other_feed,
    in_load_order,
    plan_files,
    vanished_message,
)
from raw_loader.progress import Progress
from raw_loader.reading import FileResult, read_file
from raw_loader.run import list_feed, log_rejects, log_skipped
from raw_loader.summary import Summary

log = logging.getLogger("load_raw")

TABLES = (*SOURCE_KINDS, "rejects", "load_manifest", "loads")
# Rows of a log file are written in row groups of about this many lines.
ROW_GROUP_LINES = 100_000
_LOAD_FILE = re.compile(r"^load-(\d+)(?:-\d+)?\.parquet$")
_UTC = dt.UTC

# A manifest row as read back, and a Parquet file's columns as written.
ManifestRow = dict[str, Any]
Columns = dict[str, list[Any]]

_TIMESTAMP = pa.timestamp("us", tz="UTC")
# PostgreSQL's types of the landing tables' columns (columns.py), as Arrow's.
# A payload is jsonb in PostgreSQL, its text here: Spark parses it when read.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "jsonb": pa.string(),
    "bytea": pa.binary(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "timestamptz": _TIMESTAMP,
}


def _arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([(column.name, _ARROW_TYPES[column.pg_type]) for column in columns])


LINE_SCHEMA = _arrow_schema(LINE_COLUMNS)
REJECT_SCHEMA = _arrow_schema(REJECT_COLUMNS)
LOADS_SCHEMA = _arrow_schema(LOADS_COLUMNS)
_MANIFEST_FIELDS: list[tuple[str, pa.DataType]] = [
    ("source_file", pa.string()),
    ("source_kind", pa.string()),
    ("checksum", pa.string()),
    ("size_bytes", pa.int64()),
    ("mtime_ns", pa.int64()),
    # An object's ETag (with size and mtime_ns its stamp); null for a local file.
    ("etag", pa.string()),
    # Where the file was loaded from (planning: one feed per lake).
    ("feed_root", pa.string()),
    ("row_count", pa.int32()),
    ("reject_count", pa.int32()),
    ("loaded_at", _TIMESTAMP),
    ("first_loaded_at", _TIMESTAMP),
    ("load_id", pa.int64()),
    # A --prune load's row for a file no longer in the feed.
    ("is_removed", pa.bool_()),
    # The load that wrote this row: load_id, or a later load that only
    # restamped the file (its rows stay those of load_id).
    ("recorded_by_load", pa.int64()),
]
MANIFEST_SCHEMA = pa.schema(_MANIFEST_FIELDS)


class Lake:
    """The lake folder: its tables, its committed loads and its manifest."""

    def __init__(self, root: Path):
        self.root = root

    def folder(self, table: str) -> Path:
        return self.root / table

    def create(self) -> None:
        for table in TABLES:
            self.folder(table).mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One loader at a time: a second one waits, and says so."""
        with open(self.root / ".lock", "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("another load_raw is writing to this lake: waiting for it to finish")
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def committed_loads(self) -> set[int]:
        return set(self._load_files("loads"))

    def _load_files(self, table: str) -> dict[int, list[Path]]:
        found: dict[int, list[Path]] = {}
        for path in self.folder(table).iterdir():
            match = _LOAD_FILE.match(path.name)
            if match:
                found.setdefault(int(match.group(1)), []).append(path)
        return found

    def remove_uncommitted(self) -> int:
        """Delete the files of loads that never committed (a killed run), and
        unfinished temporary files. Returns the highest load id seen."""
        committed = self.committed_loads()
        highest = max(committed, default=0)
        for table in TABLES:
            for load_id, paths in self._load_files(table).items():
                highest = max(highest, load_id)
                if load_id not in committed:
                    for path in paths:
                        log.info("removing %s: its load %d never committed", path.name, load_id)
                        path.unlink()
            for path in self.folder(table).glob(".tmp-*"):
                path.unlink()
        return highest

    def manifest(self) -> dict[str, ManifestRow]:
        """Each file's current manifest row: that of its latest committed load.
        (Rows of a lake written before etag, feed_root and recorded_by_load
        lack them: read them with .get.)"""
        committed = self.committed_loads()
        current: dict[str, ManifestRow] = {}
        for load_id, paths in sorted(self._load_files("load_manifest").items()):
            if load_id not in committed:
                continue
            for path in sorted(paths):
                for row in pq.read_table(path).to_pylist():
                    current[row["source_file"]] = row
        return {name: row for name, row in current.items() if not row["is_removed"]}


class _TableFile:
    """A Parquet file of one table for one load, written under a hidden name
    and renamed into place by publish()."""

    def __init__(self, lake: Lake, table: str, schema: pa.Schema, load_id: int, part: int = 0):
        suffix = f"-{part}" if part else ""
        self.path = lake.folder(table) / f"load-{load_id:010d}{suffix}.parquet"
        self.temp = self.path.with_name(f".tmp-{self.path.name}")
        self.schema = schema
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, columns: Columns) -> None:
        if not columns[self.schema.names[0]]:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.temp, self.schema, compression="zstd")
        self.writer.write_table(pa.table(columns, schema=self.schema))
        self.rows += len(columns[self.schema.names[0]])

    def publish(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        with open(self.temp, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.temp.unlink(missing_ok=True)


def jsonb_refusal(line: bytes) -> str | None:
    """Why PostgreSQL's jsonb would refuse a line that is valid JSON, or None:
    it holds a \\u0000 escape or a lone surrogate (a valid pair is accepted)."""
    value = json.loads(line)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "unsupported Unicode escape sequence: \\u0000 cannot be converted to text"
            if any("\ud800" <= char <= "\udfff" for char in item):
                return "invalid Unicode surrogate: a lone surrogate escape"
    return None


def judge(
    numbered: list[tuple[int, bytes]], last_line: int | None
) -> tuple[list[tuple[int, bytes]], list[Reject]]:
    """Split candidate lines into those that land and rejects, as jsonb would."""
    landed: list[tuple[int, bytes]] = []
    rejects: list[Reject] = []
    for number, line in numbered:
        reject = classify(number, line, may_be_truncated=number == last_line)
        if reject is None and b"\\u" in line:
            try:
                why = jsonb_refusal(line)
            except RecursionError:
                why = None
            if why is not None:
                reject = Reject(number, line, JSONB_REFUSED, why)
        if reject is None:
            landed.append((number, line))
        else:
            rejects.append(reject)
    return landed, rejects


def manifest_entries(manifest: dict[str, ManifestRow]) -> dict[str, ManifestEntry]:
    """The lake's manifest as planning reads PostgreSQL's: a lake written
    before etag and feed_root were kept has neither ('' and None, as
    PostgreSQL reads its own older rows)."""
    return {
        name: ManifestEntry(
            checksum=row["checksum"],
            size=row["size_bytes"],
            mtime_ns=row["mtime_ns"],
            etag=row.get("etag") or "",
            kind=row["source_kind"],
            feed_root=row.get("feed_root"),
        )
        for name, row in manifest.items()
    }


def plan(
    manifest: dict[str, ManifestRow], source: FileSource, files: list[SourceFile], *, verify: bool
) -> Plan:
    """planning.plan_files against the lake's manifest (Lake.manifest)."""
    return plan_files(
        source,
        files,
        manifest_entries(manifest),
        kinds=source.roots.keys(),
        verify=verify,
        unlisted=[name for name, _ in source.unreadable],
    )


def load_batch(
    lake: Lake,
    source: FileSource,
    batch: list[PlannedFile],
    load_id: int,
    manifest: dict[str, ManifestRow],
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> list[FileResult]:
    """Write a batch of files of one kind as one load; its loads row last."""
    kind = batch[0].file.kind
    now = dt.datetime.now(_UTC)
    lines = _TableFile(lake, kind, LINE_SCHEMA, load_id)
    rejected = _TableFile(lake, "rejects", REJECT_SCHEMA, load_id)
    results: list[FileResult] = []
    try:
        with source.reading_ahead([item.file for item in batch]):
            for item in batch:
                result = FileResult(item.file, load_id=load_id, replaces=item.replaces)
                columns: Columns = {name: [] for name in LINE_SCHEMA.names}
                for chunk in read_file(source, item.file, result, None, max_line_bytes):
                    candidates = chunk.numbered() + chunk.suspects
                    last = None
                    if chunk.ends_unterminated and candidates:
                        last = max(number for number, _ in candidates)
                    landed, rejects = judge(candidates, last)
                    rejects = sorted([*chunk.rejects, *rejects], key=lambda r: r.line_number)
                    landed.sort()
                    for number, line in landed:
                        columns["source_file"].append(item.file.name)
                        columns["line_number"].append(number)
                        columns["payload"].append(line.decode("utf-8"))
                        columns["loaded_at"].append(now)
                        columns["load_id"].append(load_id)
                    if len(columns["source_file"]) >= ROW_GROUP_LINES:
                        lines.write(columns)
                        columns = {name: [] for name in LINE_SCHEMA.names}
                    rejected.write(
                        {
                            "source_file": [item.file.name] * len(rejects),
                            "line_number": [r.line_number for r in rejects],
                            "line": [r.line for r in rejects],
                            "reason": [r.reason for r in rejects],
                            "detail": [r.detail for r in rejects],
                            "rejected_at": [now] * len(rejects),
                            "load_id": [load_id] * len(rejects),
                        }
                    )
                    result.rows += len(landed)
                    result.rejects += len(rejects)
                lines.write(columns)
                results.append(result)
        lines.publish()
        rejected.publish()
        rows = _landed_rows(results, load_id, now, manifest, source.feed_root(kind))
        _commit(lake, kind, rows, load_id, now, results)
    except BaseException:
        lines.discard()
        rejected.discard()
        raise
    return results


def _landed_rows(
    results: list[FileResult],
    load_id: int,
    now: dt.datetime,
    manifest: dict[str, ManifestRow],
    feed_root: str,
) -> list[ManifestRow]:
    """The manifest rows of files this load landed."""
    return [
        {
            "source_file": r.file.name,
            "source_kind": r.file.kind,
            "checksum": r.checksum,
            "size_bytes": r.file.size,
            "mtime_ns": r.file.mtime_ns or None,
            "etag": r.file.etag or None,
            "feed_root": feed_root,
            "row_count": r.rows,
            "reject_count": r.rejects,
            "loaded_at": now,
            "first_loaded_at": manifest.get(r.file.name, {}).get("first_loaded_at") or now,
            "load_id": load_id,
            "is_removed": False,
            "recorded_by_load": load_id,
        }
        for r in results
    ]


def _removed_rows(
    names: list[str], load_id: int, now: dt.datetime, manifest: dict[str, ManifestRow]
) -> list[ManifestRow]:
    """The rows of a prune load: each file marked removed."""
    return [
        {
            **manifest[name],
            "checksum": "",
            "size_bytes": 0,
            "mtime_ns": None,
            "etag": None,
            "row_count": 0,
            "reject_count": 0,
            "loaded_at": now,
            "load_id": load_id,
            "is_removed": True,
            "recorded_by_load": load_id,
        }
        for name in names
    ]


def _restamped_rows(
    files: list[SourceFile], load_id: int, manifest: dict[str, ManifestRow]
) -> list[ManifestRow]:
    """The rows of a restamp load: the file's current row under its new size
    and stamp. Its rows stay those of the load that landed them (load_id)."""
    return [
        {
            **manifest[file.name],
            "size_bytes": file.size,
            "mtime_ns": file.mtime_ns or None,
            "etag": file.etag or None,
            "recorded_by_load": load_id,
        }
        for file in files
    ]


def _commit(
    lake: Lake,
    kind: str,
    rows: list[ManifestRow],
    load_id: int,
    now: dt.datetime,
    results: list[FileResult] | None = None,
) -> None:
    """Write a load's manifest rows, then its loads row: the commit. `results`:
    the files it landed (none for a prune or a restamp)."""
    results = results or []
    entries = _TableFile(lake, "load_manifest", MANIFEST_SCHEMA, load_id)
    entries.write({name: [row.get(name) for row in rows] for name in MANIFEST_SCHEMA.names})
    entries.publish()
    removed = sum(bool(row["is_removed"]) for row in rows)
    commit = _TableFile(lake, "loads", LOADS_SCHEMA, load_id)
    commit.write(
        {
            "load_id": [load_id],
            "source_kind": [kind],
            "file_count": [len(results)],
            "row_count": [sum(r.rows for r in results)],
            "reject_count": [sum(r.rejects for r in results)],
            "replaced_file_count": [sum(r.replaces for r in results) + removed],
            "loaded_at": [now],
        }
    )
    commit.publish()  # the commit: from here on, readers see the load


def _restamp(
    lake: Lake, files: list[SourceFile], last_id: int, manifest: dict[str, ManifestRow]
) -> list[int]:
    """Record the new stamps of files whose content did not change: one load
    of manifest rows per kind, with ids after last_id. Returns their ids."""
    load_ids = []
    for kind in sorted({file.kind for file in files}):
        last_id += 1
        rows = _restamped_rows([file for file in files if file.kind == kind], last_id, manifest)
        _commit(lake, kind, rows, last_id, dt.datetime.now(_UTC))
        load_ids.append(last_id)
    return load_ids


def _prune(
    lake: Lake, vanished: list[tuple[str, str]], last_id: int, manifest: dict[str, ManifestRow]
) -> list[int]:
    """Mark vanished files removed: one load per kind, with ids after last_id."""
    load_ids = []
    for kind in sorted({kind for kind, _ in vanished}):
        last_id += 1
        now = dt.datetime.now(_UTC)
        rows = _removed_rows([name for k, name in vanished if k == kind], last_id, now, manifest)
        _commit(lake, kind, rows, last_id, now)
        load_ids.append(last_id)
    return load_ids


def run(source: FileSource, lake_dir: Path, options: LoadOptions) -> Summary:
    """Land the feed `source` lists (a local folder or an s3:// prefix) into
    the lake; the same plan, refusals and summary as run.run. One process:
    options.workers does not apply."""
    started = time.monotonic()
    files, skipped = list_feed(source)
    listed = time.monotonic()
    lake = Lake(lake_dir)
    lake.root.mkdir(parents=True, exist_ok=True)
    with lake.locked():
        lake.create()
        last_id = lake.remove_uncommitted()
        manifest = lake.manifest()
        load_plan = plan(manifest, source, files, verify=options.verify)
        check_other_feed(
            load_plan.other_feed, options.replace_other_feed, "another lake (--lake another_folder)"
        )
        load_ids = set(_restamp(lake, load_plan.restamped, last_id, manifest))
        last_id = max(load_ids, default=last_id)
        replaced = sum(item.replaces for item in load_plan.to_load)
        work = list(
            batches(in_load_order(load_plan.to_load), options.batch_bytes, options.batch_files)
        )
        log.info(
            "%d files found: %d new, %d changed, %d already loaded; %d batches, lake %s",
            len(files),
            len(load_plan.to_load) - replaced,
            replaced,
            len(load_plan.unchanged),
            len(work),
            lake.root,
        )
        planned = time.monotonic()
        progress = Progress(
            total_files=len(load_plan.to_load),
            total_bytes=sum(item.file.size for item in load_plan.to_load),
        )
        unread: list[Skipped] = list(load_plan.unreadable)
        log_skipped(unread)
        for batch in work:
            last_id += 1
            # A file that cannot be read at all (gone since it was listed,
            # archived) is left out of its load and named, as on PostgreSQL.
            load = functools.partial(
                load_batch,
                lake,
                source,
                load_id=last_id,
                manifest=manifest,
                max_line_bytes=options.max_line_bytes,
            )
            results, skipped_files = skipping(load, batch)
            if results:
                load_ids.add(last_id)
            progress.add(results, skipped=len(skipped_files))
            log_rejects(results, "rejects")
            log_skipped(skipped_files)
            unread.extend(skipped_files)
        vanished = load_plan.vanished
        if vanished and options.prune:
            load_ids.update(_prune(lake, vanished, last_id, manifest))
        if vanished:
            log.warning(vanished_message(vanished, pruned=options.prune, kept_in="the lake"))
    finished = time.monotonic()
    unread_names = {name for name, _ in unread}
    return Summary(
        files_found=len(files),
        files_loaded=progress.files,
        files_replaced=sum(
            item.replaces for item in load_plan.to_load if item.file.name not in unread_names
        ),
        files_unchanged=len(load_plan.unchanged),
        files_skipped=len(skipped),
        paths_unreadable=[name for name, _ in source.unreadable],
        files_vanished=[name for _, name in vanished],
        files_pruned=len(vanished) if options.prune else 0,
        event_rows=progress.rows_by_kind["events"],
        song_rows=progress.rows_by_kind["songs"],
        rejects=progress.rejects,
        loads=len(load_ids),
        first_load_id=min(load_ids, default=0),
        last_load_id=max(load_ids, default=0),
        workers=1,
        batches=len(work),
        seconds=finished - started,
        seconds_listing=listed - started,
        seconds_planning=planned - listed,
        seconds_loading=finished - planned,
        files_unreadable=sorted(unread),
        lake=str(lake.root),
    )
